package daemon

import (
	"context"
	"errors"
	"log/slog"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"busmedic/relaunch/busrestart"
	"busmedic/relaunch/control"
	"busmedic/watcher"
)

// findTimeout bounds finding out how the session bus can be restarted: a
// few calls to the bus and to the systemd user manager.
const findTimeout = 2 * time.Second

// restartFinder finds how to restart the session bus now;
// busrestart.Finder is one.
type restartFinder interface {
	Find(ctx context.Context) (busrestart.Method, error)
}

// sessionRestart is how one instance of the session bus can be restarted.
type sessionRestart struct {
	busID   string
	how     string                  // "systemd user unit dbus.service", or ""
	refused *control.RestartRefusal // why busmedic cannot restart it, or nil
}

// restartProbe finds out, once per instance of the session bus, how
// busmedic would restart it, for the status: the tray greys out "Restart
// session bus" and says why before any click. The status is asked for at
// every change and must never wait on a bus, while finding out takes a few
// D-Bus calls, which a bus going away holds up for findTimeout. So Run
// finds out when the session bus comes up, and known only reads what it
// found.
type restartProbe struct {
	finder  restartFinder
	log     *slog.Logger
	latest  atomic.Pointer[sessionRestart]
	changed chan struct{}
}

func newRestartProbe(f restartFinder, log *slog.Logger) *restartProbe {
	return &restartProbe{finder: f, log: log, changed: make(chan struct{}, 1)}
}

// known returns how the session bus instance busID can be restarted, as
// far as found out: nothing for an instance not probed yet, or for ""
// (no session bus up).
func (p *restartProbe) known(busID string) (how string, refused *control.RestartRefusal) {
	if s := p.latest.Load(); s != nil && busID != "" && s.busID == busID {
		return s.how, s.refused
	}
	return "", nil
}

// has reports whether how to restart the instance busID is known.
func (p *restartProbe) has(busID string) bool {
	s := p.latest.Load()
	return s != nil && s.busID == busID
}

// Changed gets a value each time Run has found something out; one value
// stands for any number of findings.
func (p *restartProbe) Changed() <-chan struct{} { return p.changed }

// Run follows the session bus in events, until ctx is done or events is
// closed, and finds out how to restart each instance that comes up. It
// never holds up events: the finding out runs in a goroutine of its own,
// one instance at a time, the latest only. A probe that found nothing out
// (an error that tells nothing about the bus) is tried again at the next
// event of the session bus.
func (p *restartProbe) Run(ctx context.Context, events <-chan watcher.Event) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	todo := make(chan string, 1) // the instance to probe; only the latest counts
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case id := <-todo:
				p.probe(ctx, id)
			}
		}
	})
	up := "" // the session bus instance up now
	for {
		var ev watcher.Event
		select {
		case <-ctx.Done():
			return
		case e, ok := <-events:
			if !ok {
				return
			}
			ev = e
		}
		if ev.Bus != "session" {
			continue
		}
		switch ev.Kind {
		case watcher.Up:
			up = ev.ID
		case watcher.Down:
			up = ""
		}
		if up == "" || p.has(up) {
			continue
		}
		select {
		case <-todo:
		default:
		}
		todo <- up
	}
}

// probe finds out how to restart the session bus instance busID, unless
// it is known already.
func (p *restartProbe) probe(ctx context.Context, busID string) {
	if p.has(busID) {
		return
	}
	fctx, cancel := context.WithTimeout(ctx, findTimeout)
	m, err := p.finder.Find(fctx)
	cancel()
	if ctx.Err() != nil {
		return
	}
	how, refused, known := describeRestart(m, err)
	if !known {
		p.log.Debug("how to restart the session bus not found out; asking again at its next event", "err", err)
		return
	}
	p.latest.Store(&sessionRestart{busID: busID, how: how, refused: refused})
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// describeRestart words what Finder.Find found for the status: how the
// session bus would be restarted, or why it cannot be. known is false for
// an error that tells nothing about the bus, worth asking again.
func describeRestart(m busrestart.Method, err error) (how string, refused *control.RestartRefusal, known bool) {
	switch {
	case err == nil:
		return m.String(), nil, true
	case errors.As(err, &refused):
		return "", refused, true
	}
	return "", nil, false
}

// sessionUp returns the instance id of the session bus if it is up in st,
// else "".
func sessionUp(st control.Status) string {
	for _, b := range st.Buses {
		if b.Name == "session" && b.Up {
			return b.ID
		}
	}
	return ""
}

// forwardChanges passes a value from any of ins on to out until ctx is
// done, never waiting on out: a value out holds already stands for this
// one.
func forwardChanges(ctx context.Context, out chan<- struct{}, ins ...<-chan struct{}) {
	cases := []reflect.SelectCase{{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ctx.Done())}}
	for _, in := range ins {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(in)})
	}
	for {
		i, _, ok := reflect.Select(cases)
		switch {
		case i == 0:
			return
		case !ok:
			// Closed: a case without a channel is never chosen.
			cases[i].Chan = reflect.Value{}
			continue
		}
		select {
		case out <- struct{}{}:
		default:
		}
	}
}
