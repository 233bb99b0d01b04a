// Command traychild is "busmedic tray" without the rest of busmedic's
// commands, for the idle cost test while cmd/busmedic is being wired.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"busmedic/tray"
)

func main() {
	socket := flag.String("socket", "", "control socket")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := tray.Run(ctx, *socket, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	stop()
	os.Exit(tray.ExitCode(err))
}
