//go:build !unix

package main

// Without SIGPIPE and SIGHUP there is nothing to ignore.
func ignoreSIGPIPE() {}

func ignoreHangup() {}
