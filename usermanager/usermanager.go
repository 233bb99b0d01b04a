// Package usermanager reaches the user's systemd manager (systemd --user)
// over its private socket, $XDG_RUNTIME_DIR/systemd/private. That socket
// is a direct connection to the manager, not a bus: it works while the
// session bus is down or restarting, which is exactly when busmedic needs
// the manager (to restart the bus, to bring back an app that runs in a
// unit, to enable its own unit). go-systemd is the client; the dialing is
// ours, since go-systemd's own helpers reach the user manager over the
// session bus.
package usermanager

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// Socket returns the user manager's private socket as getenv tells it:
// $XDG_RUNTIME_DIR/systemd/private, or "" without XDG_RUNTIME_DIR.
func Socket(getenv func(string) string) string {
	rt := getenv("XDG_RUNTIME_DIR")
	if rt == "" || !filepath.IsAbs(rt) {
		return ""
	}
	return filepath.Join(rt, "systemd", "private")
}

// Running reports whether a user manager listens at socket. It does not
// dial: a stale socket file makes Dial fail with the reason.
func Running(socket string) bool {
	if socket == "" {
		return false
	}
	fi, err := os.Stat(socket)
	return err == nil && fi.Mode().Type() == os.ModeSocket
}

// Dial connects to the user manager at socket, authenticated as the
// calling user. ctx bounds the whole of it (the connects, the handshakes
// and the call go-systemd makes on its connection for signals): the
// connection lives on after ctx ends (a connection shared by several
// callers must not end with the first one's context), until the caller
// closes it.
func Dial(ctx context.Context, socket string) (*sdbus.Conn, error) {
	if socket == "" {
		return nil, fmt.Errorf("no systemd user manager: XDG_RUNTIME_DIR is not set")
	}
	if _, err := os.Stat(socket); err != nil {
		return nil, fmt.Errorf("no systemd user manager: %w", err)
	}
	// A manager that accepts but does not answer (stuck, or busy with a
	// long job) must not hold the caller past ctx: closing the
	// connections ends the handshake's read and go-systemd's call, which
	// takes no context.
	var mu sync.Mutex
	var conns []*dbus.Conn
	ended := false
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		ended = true
		for _, c := range conns {
			c.Close()
		}
	})
	conn, err := sdbus.NewConnection(func() (*dbus.Conn, error) {
		// Not dbus.WithContext(ctx): godbus closes such a connection
		// when ctx ends.
		c, err := dbus.Dial("unix:path=" + socket)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		if ended {
			mu.Unlock()
			c.Close()
			return nil, context.Cause(ctx)
		}
		conns = append(conns, c)
		mu.Unlock()
		if err := c.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
			c.Close()
			return nil, err
		}
		// A direct connection: no bus driver, so no Hello.
		return c, nil
	})
	if !stop() {
		// ctx ended on the way: what was made is closed.
		if conn != nil {
			conn.Close()
		}
		return nil, fmt.Errorf("connect to the systemd user manager at %s: %w", socket, context.Cause(ctx))
	}
	if err != nil {
		return nil, fmt.Errorf("connect to the systemd user manager at %s: %w", socket, err)
	}
	return conn, nil
}
