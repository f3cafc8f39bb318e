package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/posterctl/posterctl/supervisor"
	"github.com/rs/zerolog"
)

// statusEvery is how often a cluster under systemd looks whether the number
// of children up changed, for the STATUS= line of `systemctl status`.
const statusEvery = 2 * time.Second

// notifier speaks sd_notify to the service manager that runs `up` in the
// foreground (a Type=notify unit sets NOTIFY_SOCKET): READY=1 once the
// cluster serves, STATUS= with the children up, STOPPING=1 when the ordered
// stop begins. A nil *notifier (no NOTIFY_SOCKET) does nothing.
type notifier struct {
	log    zerolog.Logger
	every  time.Duration      // how often watch looks
	cancel context.CancelFunc // stops watch
	wg     sync.WaitGroup
	mu     sync.Mutex // orders the messages of watch and Stopping
	last   string     // the last STATUS= sent
	once   sync.Once  // STOPPING=1 is sent once
}

// newNotifier returns nil unless a service manager listens.
func newNotifier(log zerolog.Logger) *notifier {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return nil
	}
	return &notifier{log: log, every: statusEvery, cancel: func() {}}
}

// send passes one message on; a service manager that cannot hear us is
// worth a warning, not a failed cluster.
func (n *notifier) send(state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		n.log.Warn().Err(err).Str("state", state).Msg("sd_notify")
	}
}

// Starting says what `up` is waiting for, before it is ready.
func (n *notifier) Starting(children int) {
	if n == nil {
		return
	}
	n.send(fmt.Sprintf("STATUS=starting %d children", children))
}

// Ready says the cluster serves, with the children up and the app's URL,
// then keeps STATUS= current until the stop begins: Stopping, or a stop
// the supervisor was asked for (posterctl down), seen by watch.
func (n *notifier) Ready(ctx context.Context, sup statusSource, url string) {
	if n == nil {
		return
	}
	status := func(ctx context.Context) (string, bool) {
		sctx, cancel := context.WithTimeout(ctx, n.every)
		defer cancel()
		st := sup.Status(sctx)
		line := childrenUp(st)
		if url != "" {
			line += ", app " + url
		}
		return line, st.Supervisor.Stopping
	}
	n.last, _ = status(ctx)
	n.send(daemon.SdNotifyReady + "\nSTATUS=" + n.last)
	ctx, n.cancel = context.WithCancel(ctx)
	n.wg.Add(1)
	go n.watch(ctx, status)
}

func (n *notifier) watch(ctx context.Context, status func(context.Context) (string, bool)) {
	defer n.wg.Done()
	tick := time.NewTicker(n.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		line, stopping := status(ctx)
		n.mu.Lock()
		switch {
		case ctx.Err() != nil:
		case stopping:
			n.sendStopping()
		case line != n.last:
			n.last = line
			n.send("STATUS=" + line)
		}
		n.mu.Unlock()
		if stopping {
			return
		}
	}
}

// Stopping says the ordered stop begins, if not yet said, and ends watch:
// nothing is sent after it. It is safe to call again.
func (n *notifier) Stopping() {
	if n == nil {
		return
	}
	n.cancel()
	n.mu.Lock()
	n.sendStopping()
	n.mu.Unlock()
	n.wg.Wait()
}

func (n *notifier) sendStopping() {
	n.once.Do(func() { n.send(daemon.SdNotifyStopping + "\nSTATUS=stopping") })
}

// statusSource is the supervisor, as the notifier sees it.
type statusSource interface {
	Status(ctx context.Context) supervisor.Status
}

// childrenUp is the STATUS= line: how many of the cluster's own children
// (remote backends are not ours) run.
func childrenUp(st supervisor.Status) string {
	up, all := 0, 0
	for _, c := range st.Children {
		if c.Remote {
			continue
		}
		all++
		if c.State == supervisor.Running {
			up++
		}
	}
	return fmt.Sprintf("%d of %d children up", up, all)
}
