package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"busmedic/relaunch/busrestart"
	"busmedic/relaunch/control"
	"busmedic/watcher"
	"busmedic/watcher/bustest"
)

// deadline bounds every wait of a test.
const deadline = 20 * time.Second

// awaitKnown waits for the probe to find out about the session bus
// instance busID.
func awaitKnown(t *testing.T, p *restartProbe, busID string) (how, refused string) {
	t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		if p.has(busID) {
			how, r := p.known(busID)
			if r != nil {
				refused = r.Reason
			}
			return how, refused
		}
		select {
		case <-p.Changed():
		case <-timer.C:
			t.Fatalf("how to restart bus %s not found out within %s", busID, deadline)
		}
	}
}

// TestRestartProbeRealBus: a watcher of a real bus feeds the probe, which
// finds out, at each instance of the bus, that busmedic cannot restart a
// bus someone else started, and why.
func TestRestartProbeRealBus(t *testing.T) {
	bus := bustest.New(t)
	w, err := watcher.New(watcher.Target{Name: "session", Address: bus.Address()}, watcher.WithLogger(discard))
	if err != nil {
		t.Fatal(err)
	}
	// No systemd user manager: the socket is nowhere.
	p := newRestartProbe(busrestart.Finder{Address: bus.Address(), SystemdSocket: filepath.Join(t.TempDir(), "none")}, discard)
	ctx, cancel := context.WithCancel(context.Background())
	events, toProbe := make(chan watcher.Event), make(chan watcher.Event, 64)
	var wg sync.WaitGroup
	wg.Go(func() { p.Run(ctx, toProbe) })
	wg.Go(func() { w.Run(ctx, events) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})

	up := func() string {
		t.Helper()
		for ev := range events {
			if ev.Kind == watcher.Up {
				toProbe <- ev
				return ev.ID
			}
			toProbe <- ev
		}
		t.Fatal("watcher stopped")
		return ""
	}
	for i := range 2 {
		id := up()
		how, refused := awaitKnown(t, p, id)
		if how != "" || !strings.Contains(refused, fmt.Sprintf("pid %d", bus.PID())) {
			t.Errorf("instance %d: how %q, refused %q; want refused for pid %d", i, how, refused, bus.PID())
		}
		bus.Kill()
		bus.Start()
	}
}

// heldFinder answers Find only when the test says so.
type heldFinder struct {
	calls   chan struct{}
	answers chan error
}

func (f *heldFinder) Find(ctx context.Context) (busrestart.Method, error) {
	select {
	case f.calls <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case err := <-f.answers:
		if err == nil {
			return &busrestart.Managed{}, nil
		}
		return nil, err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TestRestartProbeNeverWaits: while finding out takes its time, the
// status has nothing to tell rather than waiting; a bus that came up
// meanwhile is probed next; a probe that found nothing out is tried again
// at the next event of the session bus, and one that did is not.
func TestRestartProbeNeverWaits(t *testing.T) {
	f := &heldFinder{calls: make(chan struct{}), answers: make(chan error)}
	p := newRestartProbe(f, discard)
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan watcher.Event)
	var wg sync.WaitGroup
	wg.Go(func() { p.Run(ctx, events) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	managed := (&busrestart.Managed{}).String()

	events <- watcher.Event{Bus: "session", Kind: watcher.Up, ID: "a"}
	<-f.calls
	if how, refused := p.known("a"); how != "" || refused != nil {
		t.Errorf("while finding out: %q, %+v", how, refused)
	}
	// Run still takes events while Find waits.
	events <- watcher.Event{Bus: "system", Kind: watcher.Up, ID: "s"}
	events <- watcher.Event{Bus: "session", Kind: watcher.Down, ID: "a"}
	events <- watcher.Event{Bus: "session", Kind: watcher.Up, ID: "b"}
	f.answers <- &control.RestartRefusal{Bus: "session", Reason: "gone"}
	<-f.calls // b, next
	if _, refused := awaitKnown(t, p, "a"); refused != "gone" {
		t.Errorf("a: refused %q", refused)
	}
	f.answers <- errors.New("no idea")
	// Found nothing out about b: asked again at the next event of the
	// session bus, not of another.
	events <- watcher.Event{Bus: "system", Kind: watcher.PeerJoined}
	events <- watcher.Event{Bus: "session", Kind: watcher.PeerJoined}
	<-f.calls
	f.answers <- nil
	if how, _ := awaitKnown(t, p, "b"); how != managed {
		t.Errorf("b: how %q, want %q", how, managed)
	}
	if how, _ := p.known("a"); how != "" {
		t.Errorf("a is gone, yet known: %q", how)
	}
	// b is known: no more calls for it. Had this event asked again, that
	// call would take the answer meant for c, and c would never be known.
	events <- watcher.Event{Bus: "session", Kind: watcher.PeerJoined}
	events <- watcher.Event{Bus: "session", Kind: watcher.Up, ID: "c"}
	<-f.calls
	f.answers <- nil
	awaitKnown(t, p, "c")
}

func TestSessionUp(t *testing.T) {
	for _, tc := range []struct {
		buses []control.BusStatus
		want  string
	}{
		{nil, ""},
		{[]control.BusStatus{{Name: "system", Up: true, ID: "s"}, {Name: "session", Up: true, ID: "a"}}, "a"},
		{[]control.BusStatus{{Name: "session", Up: false, ID: "a"}, {Name: "system", Up: true, ID: "s"}}, ""},
	} {
		if got := sessionUp(control.Status{Buses: tc.buses}); got != tc.want {
			t.Errorf("sessionUp(%+v) = %q, want %q", tc.buses, got, tc.want)
		}
	}
}

// A restart asked for by a client ends when the session bus accepts the
// connection and then answers nothing (a bus stopped, or wedged): the
// request's context ends only with the daemon, and a request held for good
// would keep its client's slot.
func TestRestartBusOfAMuteBus(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "bus")
	bustest.Mute(t, sock)
	b := backend{
		finder: busrestart.Finder{Address: "unix:path=" + sock, SystemdSocket: filepath.Join(dir, "no-manager")},
		log:    slog.New(slog.DiscardHandler),
	}
	done := make(chan error, 1)
	go func() { done <- b.RestartBus(context.Background(), "session") }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("RestartBus of a bus that answers nothing succeeded")
		}
	case <-time.After(deadline):
		t.Fatal("RestartBus of a bus that answers nothing did not end")
	}
}
