package keep_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"github.com/godbus/dbus/v5"

	"busmedic/keep"
	"busmedic/relaunch/control"
)

// A keeper serves the apps started with DBUS_SESSION_BUS_ADDRESS pointing
// at its socket; they reach the real session bus through it, and keep
// their connections when it restarts.
func Example() {
	busAddress := os.Getenv("DBUS_SESSION_BUS_ADDRESS")
	dir, _ := os.MkdirTemp("", "keep-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "keep-session.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		fmt.Println(err)
		return
	}
	k := keep.New(keep.Config{
		Bus:     "session",
		Address: func() (string, error) { return busAddress, nil },
		Logger:  slog.New(slog.DiscardHandler),
		Report:  func(r control.KeptReport) {}, // e.g. tell the daemon
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- k.Serve(ctx, l) }()
	defer func() {
		cancel() // Serve closes every app's connection and returns
		<-done
	}()

	// An app, as it would connect with
	// DBUS_SESSION_BUS_ADDRESS=unix:path=.../keep-session.sock.
	app, err := dbus.Connect("unix:path=" + path)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("kept: %d app\n", len(k.Report().Apps))
	app.Close()
}
