package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"busmedic/cmd/busmedic/internal/cli"
	"busmedic/relaunch/control"
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
	// The keeper's replays come through the daemon, when the session
	// bus is watched; watch works as well without a daemon.
	replays := make(chan control.Replay, 16)
	if watched[watcher.SessionTarget().Address] {
		go control.NewClient(control.DefaultPath()).FollowReplays(ctx, time.Now(), replays)
	}

	enc := json.NewEncoder(in.Stdout)
	for {
		var err error
		select {
		case e, ok := <-events:
			if !ok {
				return exitOK
			}
			if in.On("json") {
				err = enc.Encode(e)
			} else {
				_, err = fmt.Fprintln(in.Stdout, e)
			}
		case r := <-replays:
			if in.On("json") {
				err = enc.Encode(keptEvent{Time: r.Time, Bus: r.Bus, Event: "kept", Replay: r})
			} else {
				_, err = fmt.Fprintf(in.Stdout, "%s %s bus: %s\n", r.Time.Format("15:04:05.000"), r.Bus, r.Text())
			}
		}
		if err != nil {
			// The reader went away (a closed pipe): nothing left to do.
			return exitError
		}
	}
}

// keptEvent is a replay of the keeper as "busmedic watch --json" prints
// it, beside the watcher's events: "event": "kept".
type keptEvent struct {
	Time   time.Time      `json:"time"`
	Bus    string         `json:"bus"`
	Event  string         `json:"event"`
	Replay control.Replay `json:"replay"`
}
