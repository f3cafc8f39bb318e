// Package integration tests the Poster app as users and the supervisor run
// it: real `posterctl backend` processes, real sockets on 127.0.0.1 and a
// real SQLite file shared between them. It also holds the app's benchmarks
// and its browser test (chromedp with Debian's chromium).
package integration
