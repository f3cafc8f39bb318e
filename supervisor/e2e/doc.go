// Package e2e holds the acceptance tests of `posterctl up`, `status` and
// `down`: they build the real binary and drive it as a user would, with free
// ports and a temporary run dir each. It has no code of its own.
package e2e
