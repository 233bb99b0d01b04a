package watcher_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"busmedic/watcher"
	"busmedic/watcher/bustest"
)

// TestRunAll runs watchers of two buses into one channel: the Up of each
// comes through, and the channel is closed once ctx ends them.
func TestRunAll(t *testing.T) {
	var ws []*watcher.Watcher
	addresses := map[string]bool{}
	for range 2 {
		bus := bustest.New(t)
		target, err := watcher.ParseTarget(bus.Address())
		if err != nil {
			t.Fatal(err)
		}
		w, err := watcher.New(target, watcher.UpDownOnly(), watcher.WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
		addresses[bus.Address()] = true
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan watcher.Event)
	done := make(chan struct{})
	go func() {
		defer close(done)
		watcher.RunAll(ctx, ws, events)
	}()
	timeout := time.After(deadline)
	for len(addresses) > 0 {
		select {
		case e := <-events:
			if e.Kind == watcher.Up {
				delete(addresses, e.Bus)
			}
		case <-timeout:
			t.Fatalf("no Up from %v", addresses)
		}
	}
	cancel()
	for {
		select {
		case _, ok := <-events:
			if !ok {
				<-done
				return
			}
		case <-timeout:
			t.Fatal("events not closed after ctx ended")
		}
	}
}

func TestTee(t *testing.T) {
	in := make(chan watcher.Event, 3)
	a, b := make(chan watcher.Event, 3), make(chan watcher.Event, 3)
	for _, k := range []watcher.Kind{watcher.Up, watcher.Outdated, watcher.Down} {
		in <- watcher.Event{Kind: k}
	}
	close(in)
	watcher.Tee(context.Background(), in, a, b)
	for _, out := range []chan watcher.Event{a, b} {
		var got []watcher.Kind
		for e := range out {
			got = append(got, e.Kind)
		}
		if len(got) != 3 || got[0] != watcher.Up || got[1] != watcher.Outdated || got[2] != watcher.Down {
			t.Errorf("got %v, want up, outdated, down", got)
		}
	}
}
