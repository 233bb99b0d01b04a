package main

import (
	"context"
	"flag"
	"io"
	stdlog "log"
	"log/slog"

	"busmedic/relaunch/control"
	"busmedic/tray"
)

// runTray is "busmedic tray", the tray icon. "busmedic run" starts it as a
// child and restarts it (tray.Supervise); it can also be run by hand. Its
// exit status tells the supervisor what to do: see tray.ExitCode.
func runTray(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tray", flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", control.DefaultPath(), "the daemon's control socket")
	verbose := fs.Bool("v", false, "log debug messages")
	if code, ok := parseFlags(fs, args, stdout, "busmedic tray [--socket PATH]",
		"Shows busmedic's icon and menu in the panel (StatusNotifierItem) until Quit.\n"+
			"busmedic run starts it by itself; exit status 3 means the session bus went away."); !ok {
		return code
	}
	if !noArgs(fs, stderr, "tray") {
		return exitUsage
	}
	log := newLogger(stderr, slog.LevelInfo, *verbose).With("component", "tray")
	// systray reports its failures through the standard log package; as
	// warnings through ours, they reach the journal at warning priority
	// and in the same format, instead of as bare lines at info.
	stdlog.SetFlags(0)
	stdlog.SetOutput(slog.NewLogLogger(log.Handler(), slog.LevelWarn).Writer())
	err := tray.Run(ctx, *socket, log)
	if err != nil {
		log.Warn("tray exits", "err", err)
	}
	return tray.ExitCode(err)
}
