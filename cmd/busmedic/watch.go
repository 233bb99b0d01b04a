package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"busmedic/watcher"
)

// busList collects repeated --bus flags.
type busList []string

func (b *busList) String() string     { return strings.Join(*b, ",") }
func (b *busList) Set(s string) error { *b = append(*b, s); return nil }

func runWatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var buses busList
	fs.Var(&buses, "bus", "bus to watch: session, system or a D-Bus address (repeatable; default both)")
	asJSON := fs.Bool("json", false, "print one JSON object per event")
	verbose := fs.Bool("v", false, "log the watcher's own diagnostics to stderr")
	if code, ok := parseFlags(fs, args, stdout, "busmedic watch [--bus session|system|ADDRESS]... [--json]",
		"Streams the events of the buses until interrupted (Ctrl-C exits 0)."); !ok {
		return code
	}
	if !noArgs(fs, stderr, "watch") {
		return exitUsage
	}
	if len(buses) == 0 {
		buses = busList{"session", "system"}
	}
	// The events are watch's output; its log says only what went wrong,
	// unless asked for more.
	log := newLogger(stderr, slog.LevelError, *verbose)

	var watchers []*watcher.Watcher
	for _, spec := range buses {
		t, err := watcher.ParseTarget(spec)
		if err == nil {
			var w *watcher.Watcher
			if w, err = watcher.New(t, watcher.WithLogger(log)); err == nil {
				watchers = append(watchers, w)
				continue
			}
		}
		fmt.Fprintf(stderr, "busmedic watch: --bus %s: %v\n", spec, err)
		return exitUsage
	}

	events := make(chan watcher.Event, 64)
	go watcher.RunAll(ctx, watchers, events)

	enc := json.NewEncoder(stdout)
	for e := range events {
		var err error
		if *asJSON {
			err = enc.Encode(e)
		} else {
			_, err = fmt.Fprintln(stdout, e)
		}
		if err != nil {
			// The reader went away (a closed pipe): nothing left to do.
			return exitError
		}
	}
	return exitOK
}
