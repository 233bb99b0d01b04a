package watcher_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"busmedic/watcher"
	"busmedic/watcher/bustest"
)

// deadline bounds every wait of these tests; a real bus answers in
// milliseconds, so reaching it means the event never came.
const deadline = 20 * time.Second

// recorder runs a Watcher for a test and lets it wait for events.
type recorder struct {
	t      *testing.T
	w      *watcher.Watcher
	events chan watcher.Event
	seen   []watcher.Event
	// watched receives once per connection when its file watch (for
	// Outdated) is in place.
	watched chan struct{}
}

// watch starts a Watcher on address and stops it when the test ends.
func watch(t *testing.T, address string, opts ...watcher.Option) *recorder {
	t.Helper()
	// The watcher's log goes with the test's output, shown when it fails.
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	w, err := watcher.New(watcher.Target{Name: "test", Address: address}, append([]watcher.Option{watcher.WithLogger(log)}, opts...)...)
	if err != nil {
		t.Fatalf("watcher.New(%q): %v", address, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &recorder{t: t, w: w, events: make(chan watcher.Event, 1024), watched: make(chan struct{}, 1)}
	watcher.SetFilesWatched(w, func() {
		select {
		case r.watched <- struct{}{}:
		default: // only the latest matters to a test
		}
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx, r.events)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return r
}

func watchBus(t *testing.T, b *bustest.Bus) *recorder {
	t.Helper()
	return watch(t, b.Address())
}

// next returns the next event of kind k, skipping others, and fails the
// test if none comes in time.
func (r *recorder) next(k watcher.Kind) watcher.Event {
	r.t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		select {
		case e := <-r.events:
			r.seen = append(r.seen, e)
			if e.Kind == k {
				return e
			}
		case <-timer.C:
			r.t.Fatalf("no %v event within %s; seen:\n%s", k, deadline, r.history())
			return watcher.Event{}
		}
	}
}

// filesWatched waits until a connection's file watch is in place, so that
// its inotify instance and goroutines count as the steady state.
func (r *recorder) filesWatched() {
	r.t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	select {
	case <-r.watched:
	case <-timer.C:
		r.t.Fatalf("the bus daemon's files not watched within %s", deadline)
	}
}

// nextEvent returns the next event of any kind.
func (r *recorder) nextEvent() watcher.Event {
	r.t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	select {
	case e := <-r.events:
		r.seen = append(r.seen, e)
		return e
	case <-timer.C:
		r.t.Fatalf("no event within %s; seen:\n%s", deadline, r.history())
		return watcher.Event{}
	}
}

// nextMatching is next with a condition on the event.
func (r *recorder) nextMatching(k watcher.Kind, ok func(watcher.Event) bool) watcher.Event {
	r.t.Helper()
	for {
		e := r.next(k)
		if ok(e) {
			return e
		}
	}
}

// quiet fails the test if any event arrives within d.
func (r *recorder) quiet(d time.Duration) {
	r.t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case e := <-r.events:
		r.t.Fatalf("unexpected event while quiet: %v", e)
	case <-timer.C:
	}
}

func (r *recorder) history() string {
	var b strings.Builder
	for _, e := range r.seen {
		fmt.Fprintf(&b, "  %v\n", e)
	}
	return b.String()
}

// findPeer returns the peer with pid in peers.
func findPeer(peers []watcher.Peer, pid int) (watcher.Peer, bool) {
	for _, p := range peers {
		if p.PID == pid {
			return p, true
		}
	}
	return watcher.Peer{}, false
}
