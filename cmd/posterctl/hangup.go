package main

import (
	"os"
	"sync"
	"syscall"

	"github.com/posterctl/posterctl/supervisor"
	"github.com/rs/zerolog"
)

// hangupReopens passes on the signals of raw, except that in a detached
// supervisor (files not nil) SIGHUP reopens the log files instead, the
// logrotate convention, and never stops the cluster. In the foreground a
// SIGHUP is the terminal closing, and it stops the cluster like Ctrl+C, as
// for any shell job. stop ends the forwarding; call it before returning.
func hangupReopens(raw <-chan os.Signal, files *supervisor.FileSink, log zerolog.Logger) (sigs <-chan os.Signal, stop func()) {
	if files == nil {
		return raw, func() {}
	}
	out := make(chan os.Signal, 2)
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-quit:
				return
			case sig := <-raw:
				if sig != syscall.SIGHUP {
					select {
					case out <- sig:
					case <-quit:
						return
					}
					continue
				}
				if err := files.Reopen(); err != nil {
					log.Error().Err(err).Msg("SIGHUP: reopening the log files failed")
					continue
				}
				log.Info().Msg("SIGHUP: log files reopened; the cluster goes on")
			}
		}
	}()
	var once sync.Once
	return out, func() {
		once.Do(func() {
			close(quit)
			wg.Wait()
		})
	}
}
