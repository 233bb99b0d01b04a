// Command busmedic-rules is the rules editor window: add, change and try
// busmedic's relaunch rules. It is its own program so that Fyne, cgo and GL
// never link into the daemon; "busmedic rules edit" starts it.
//
// Exit status: 0 when the window was closed, 1 on failure (such as no
// display to show the window on: it says so in one line), 2 on bad usage.
// With BUSMEDIC_RULES_READY=1 it prints "window shown" once its window is
// on screen (tests wait for that line).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"busmedic/appdb"
	// Before Fyne's own init reads the locale: see the package.
	_ "busmedic/cmd/busmedic-rules/internal/quietlocale"
	"busmedic/relaunch/control"
	"busmedic/tray/editor"
)

func main() {
	fs := flag.NewFlagSet("busmedic-rules", flag.ContinueOnError)
	config := fs.String("config", "", "user rules `FILE` (default $"+appdb.EnvConfig+" or $XDG_CONFIG_HOME/busmedic/apps.toml)")
	socket := fs.String("control", control.DefaultPath(), "the daemon's control `SOCKET`")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "busmedic-rules: unexpected argument %q\n", fs.Arg(0))
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var shown func()
	if os.Getenv("BUSMEDIC_RULES_READY") == "1" {
		shown = func() { fmt.Println("window shown") }
	}
	opts := editor.Options{Paths: appdb.DefaultPaths(*config), ControlPath: *socket, Logger: slog.Default()}
	if err := editor.Run(ctx, opts, shown); err != nil {
		// Run's errors say "busmedic rules …" themselves.
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
