package watcher_test

import (
	"syscall"
	"testing"

	"busmedic/watcher"
	"busmedic/watcher/bustest"
)

// TestDownSnapshotOrderlyStop: a dbus-daemon stopped with SIGTERM says
// goodbye for every peer before it closes our connection; the peers it
// disconnected are in the Down snapshot all the same, with their names, as
// after a SIGKILL, which sends no goodbyes. A peer that left while the bus
// was still serving is not.
func TestDownSnapshotOrderlyStop(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []bustest.Option
		stop func(*bustest.Bus)
	}{
		{"stock config SIGTERM", []bustest.Option{bustest.Stock()}, (*bustest.Bus).Stop},
		{"stock config SIGKILL", []bustest.Option{bustest.Stock()}, (*bustest.Bus).Kill},
		{"test config SIGTERM", nil, (*bustest.Bus).Stop},
		{"abstract SIGTERM", []bustest.Option{bustest.Stock(), bustest.Abstract()}, (*bustest.Bus).Stop},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := bustest.New(t, tc.opts...)
			exiting := bus.StartApp("-name", "org.example.Exit", "-name", "org.example.Exit2")
			deaf := bus.StartApp("-name", "org.example.Deaf", "-mode", "deaf")
			gone := bus.StartApp("-name", "org.example.Gone")
			r := watchBus(t, bus)
			r.next(watcher.Up)
			for _, a := range []*bustest.App{exiting, deaf, gone} {
				r.nextMatching(watcher.PeerJoined, func(e watcher.Event) bool { return e.Peer.PID == a.PID() })
			}
			// A peer that leaves while the bus serves: the bus answers
			// after its goodbye, so it is gone for good.
			gone.Cmd.Process.Kill()
			r.nextMatching(watcher.PeerLeft, func(e watcher.Event) bool { return e.Peer.PID == gone.PID() })
			waitFor(t, "departure confirmed", func() bool { return r.w.Confirmed() }, func() string { return "still unconfirmed" })

			tc.stop(bus)
			down := r.next(watcher.Down)
			for _, app := range []struct {
				app   *bustest.App
				names []string
			}{{exiting, []string{"org.example.Exit", "org.example.Exit2"}}, {deaf, []string{"org.example.Deaf"}}} {
				p, ok := findPeer(down.Peers, app.app.PID())
				if !ok {
					t.Fatalf("Down snapshot lacks pid %d: %v\n%s", app.app.PID(), down.Peers, r.history())
				}
				checkPeer(t, p, app.app, app.names...)
			}
			if p, ok := findPeer(down.Peers, gone.PID()); ok {
				t.Errorf("Down snapshot has %v, which left before the bus went down", p)
			}
		})
	}
}

// A client that finished by itself just as the bus went down (its goodbye
// came too late for the bus to confirm it) is at most marked as one that
// may have left; a client the bus disconnected while it lived is not.
func TestDownSnapshotFinishedClient(t *testing.T) {
	bus := bustest.New(t, bustest.Stock())
	deaf := bus.StartApp("-name", "org.example.Deaf", "-mode", "deaf")
	finished := bus.StartApp("-name", "org.example.Finished")
	r := watchBus(t, bus)
	r.next(watcher.Up)
	for _, a := range []*bustest.App{deaf, finished} {
		r.nextMatching(watcher.PeerJoined, func(e watcher.Event) bool { return e.Peer.PID == a.PID() })
	}
	// The daemon, held still, learns of the client's exit and of its own
	// end together, as when a client finishes the moment the bus stops.
	bus.Signal(syscall.SIGSTOP)
	finished.Cmd.Process.Kill()
	<-finished.Exited()
	bus.Signal(syscall.SIGTERM)
	bus.Signal(syscall.SIGCONT)
	down := r.next(watcher.Down)
	if p, ok := findPeer(down.Peers, finished.PID()); ok && !p.MayHaveLeft {
		t.Errorf("Down snapshot has the finished client %v as one that fell off", p)
	}
	if p, ok := findPeer(down.Peers, deaf.PID()); !ok || p.MayHaveLeft {
		t.Errorf("Down snapshot: deaf app %+v (found %v), want it, fallen off", p, ok)
	}
}
