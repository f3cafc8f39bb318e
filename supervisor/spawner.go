package supervisor

import (
	"errors"
	"os/exec"
	"runtime"
	"sync"
)

var errSpawnerClosed = errors.New("spawner closed")

// spawner starts every child from one goroutine locked to its OS thread.
// Pdeathsig fires when the thread that forked the child exits, not the
// process (golang/go#27505); an unlocked goroutine lets Go retire that thread
// while the supervisor lives on, killing the child for no reason. The thread
// stays locked until Close, which comes after every child has been reaped.
type spawner struct {
	reqs      chan spawnReq
	quit      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

type spawnReq struct {
	cmd   *exec.Cmd
	reply chan error
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq), quit: make(chan struct{}), done: make(chan struct{})}
	go s.loop()
	return s
}

func (s *spawner) loop() {
	defer close(s.done)
	// Never unlocked: when loop returns, Go ends this thread instead of
	// handing it to other goroutines.
	runtime.LockOSThread()
	for {
		select {
		case r := <-s.reqs:
			r.reply <- r.cmd.Start()
		case <-s.quit:
			return
		}
	}
}

// start runs cmd.Start on the locked thread.
func (s *spawner) start(cmd *exec.Cmd) error {
	r := spawnReq{cmd: cmd, reply: make(chan error, 1)}
	select {
	case s.reqs <- r:
		return <-r.reply
	case <-s.quit:
		return errSpawnerClosed
	}
}

// Close ends the locked thread; only call it once every child is gone.
func (s *spawner) Close() {
	s.closeOnce.Do(func() { close(s.quit) })
	<-s.done
}
