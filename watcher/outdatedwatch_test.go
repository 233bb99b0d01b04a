package watcher

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// runWatcher runs a Watcher on address for the test and returns its events
// and a channel that receives once per connection when its file watch is in
// place.
func runWatcher(t *testing.T, address string) (<-chan Event, <-chan struct{}) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	w, err := New(Target{Name: "test", Address: address}, WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	watched := make(chan struct{}, 16)
	w.filesWatched = func() { watched <- struct{}{} }
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan Event, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx, events)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return events, watched
}

// waitWatched waits for the file watch of the next connection.
func waitWatched(t *testing.T, watched <-chan struct{}) {
	t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	select {
	case <-watched:
	case <-timer.C:
		t.Fatalf("the bus daemon's files not watched within %s", deadline)
	}
}

// nextKind returns the next event of kind k and fails the test if none
// comes within limit.
func nextKind(t *testing.T, events <-chan Event, k Kind, limit time.Duration) Event {
	t.Helper()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	for {
		select {
		case e := <-events:
			if e.Kind == k {
				return e
			}
		case <-timer.C:
			t.Fatalf("no %v event within %s", k, limit)
			return Event{}
		}
	}
}

// TestOutdatedEventOnReplace replaces the running daemon's executable, as
// dpkg does, and expects the event within the 2 s the issue asks for.
func TestOutdatedEventOnReplace(t *testing.T) {
	bus, exe, _ := updatedBus(t)
	events, watched := runWatcher(t, bus.Address())
	up := nextKind(t, events, Up, deadline)
	// A replacement before the file watch is in place would be found by
	// the check at Up instead, which the next test covers.
	waitWatched(t, watched)
	replaced := time.Now()
	bus.Update()
	e := nextKind(t, events, Outdated, deadline)
	t.Logf("Outdated came %s after the replacement", time.Since(replaced))
	if e.ID != up.ID || !strings.Contains(e.Reason, exe) || e.Peer == nil || e.Peer.PID != bus.PID() {
		t.Errorf("Outdated = %+v; want bus %s, reason naming %s, peer pid %d", e, up.ID, exe, bus.PID())
	}
	if len(e.Files) != 1 || e.Files[0] != exe {
		t.Errorf("Outdated files = %v, want [%s]", e.Files, exe)
	}
	if s := e.String(); !strings.Contains(s, "outdated") || !strings.Contains(s, exe) {
		t.Errorf("String() = %q", s)
	}

	// The restarted daemon runs the new file: it is up to date, and the
	// file watch of the old connection is gone. A second replacement is
	// reported once, for the new daemon only.
	bus.Restart()
	r := nextKind(t, events, Restarted, deadline)
	waitWatched(t, watched)
	bus.Update()
	e = nextKind(t, events, Outdated, deadline)
	if e.ID != r.ID || e.Peer == nil || e.Peer.PID != bus.PID() {
		t.Errorf("Outdated after restart = %+v; want bus %s, pid %d", e, r.ID, bus.PID())
	}
}

// TestOutdatedEventAtUp starts watching a bus whose daemon was replaced
// before: Outdated follows Up.
func TestOutdatedEventAtUp(t *testing.T) {
	bus, exe, _ := updatedBus(t)
	bus.Update()
	events, _ := runWatcher(t, bus.Address())
	up := nextKind(t, events, Up, deadline)
	e := nextKind(t, events, Outdated, deadline)
	if e.ID != up.ID || !strings.Contains(e.Reason, exe) || len(e.Files) != 0 {
		t.Errorf("Outdated = %+v; want bus %s, reason naming %s, no files", e, up.ID, exe)
	}
}
