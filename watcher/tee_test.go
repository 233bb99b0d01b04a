package watcher_test

import (
	"context"
	"testing"

	"busmedic/watcher"
)

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
