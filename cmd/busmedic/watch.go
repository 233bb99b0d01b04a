package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"strings"

	"busmedic/cmd/busmedic/internal/cli"
	"busmedic/watcher"
)

// busList collects repeated --bus flags.
type busList []string

func (b *busList) String() string     { return strings.Join(*b, ",") }
func (b *busList) Set(s string) error { *b = append(*b, s); return nil }

func watchFlags(fs *flag.FlagSet) {
	fs.Var(&busList{}, "bus", "bus to watch: session, system or a D-Bus address (repeatable; default both)")
	fs.Bool("json", false, "print one JSON object per event")
	fs.Bool("v", false, "log the watcher's own diagnostics to stderr")
}

func runWatch(ctx context.Context, in *cli.Call) int {
	buses := *in.Flags.Lookup("bus").Value.(*busList)
	if len(buses) == 0 {
		buses = busList{"session", "system"}
	}
	// The events are watch's output; its log says only what went wrong,
	// unless asked for more.
	log := logger(in, slog.LevelError)

	var watchers []*watcher.Watcher
	watched := map[string]bool{} // by address: a bus named twice is watched once
	for _, spec := range buses {
		t, err := watcher.ParseTarget(spec)
		var w *watcher.Watcher
		if err == nil {
			w, err = watcher.New(t, watcher.WithLogger(log))
		}
		if err != nil {
			return in.UsageError("--bus %s: %v", spec, err)
		}
		if !watched[t.Address] {
			watched[t.Address] = true
			watchers = append(watchers, w)
		}
	}

	events := make(chan watcher.Event, 64)
	go watcher.RunAll(ctx, watchers, events)

	enc := json.NewEncoder(in.Stdout)
	for e := range events {
		var err error
		if in.On("json") {
			err = enc.Encode(e)
		} else {
			_, err = fmt.Fprintln(in.Stdout, e)
		}
		if err != nil {
			// The reader went away (a closed pipe): nothing left to do.
			return exitError
		}
	}
	return exitOK
}
