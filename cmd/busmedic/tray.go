package main

import (
	"context"
	stdlog "log"
	"log/slog"

	"busmedic/cmd/busmedic/internal/cli"
	"busmedic/tray"
)

// runTray is "busmedic tray", the tray icon. "busmedic run" starts it as a
// child and restarts it (tray.Supervise); it can also be run by hand. Its
// exit status tells the supervisor what to do: see tray.ExitCode.
func runTray(ctx context.Context, in *cli.Call) int {
	log := logger(in, slog.LevelInfo).With("component", "tray")
	// systray reports its failures through the standard log package; as
	// warnings through ours, they reach the journal at warning priority
	// and in the same format, instead of as bare lines at info.
	stdlog.SetFlags(0)
	stdlog.SetOutput(slog.NewLogLogger(log.Handler(), slog.LevelWarn).Writer())
	err := tray.Run(ctx, in.Str("socket"), log)
	if err != nil {
		log.Warn("tray exits", "err", err)
	}
	return tray.ExitCode(err)
}
