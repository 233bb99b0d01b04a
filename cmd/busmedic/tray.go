package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
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
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: busmedic tray [--socket PATH]")
		fmt.Fprintln(fs.Output(), "\nShows busmedic's icon and menu in the panel (StatusNotifierItem) until Quit.")
		fmt.Fprintln(fs.Output(), "busmedic run starts it by itself; exit status 3 means the session bus went away.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.Usage()
			return exitOK
		}
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "busmedic tray: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})).With("component", "tray")
	err := tray.Run(ctx, *socket, log)
	if err != nil {
		log.Warn("tray exits", "err", err)
	}
	return tray.ExitCode(err)
}
