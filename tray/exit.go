package tray

import (
	"errors"
	"fmt"

	"github.com/godbus/dbus/v5"
)

// Exit statuses of "busmedic tray", which Supervise reads.
const (
	// ExitQuit: the user chose Quit, or the tray was told to stop. The
	// supervisor does not restart it.
	ExitQuit = 0
	// ExitError: the tray failed; the supervisor restarts it with backoff.
	ExitError = 1
	// ExitBusLost: the session bus connection died. The supervisor
	// restarts it at once; the new tray waits for the bus to be back.
	ExitBusLost = 3
)

// errBusLost means the tray's session bus connection died, taking the
// StatusNotifierItem with it.
var errBusLost = errors.New("tray: session bus connection lost")

// errParentGone means the supervising daemon went away.
var errParentGone = errors.New("tray: supervisor went away")

// ExitCode maps what Run returned to the child's exit status.
func ExitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, errParentGone):
		return ExitQuit
	case errors.Is(err, errBusLost):
		return ExitBusLost
	default:
		return ExitError
	}
}

// panicErr turns a panic from systray into an error: errBusLost when conn,
// the item's connection, is gone or not known yet, as its setters panic
// (prop.SetMust) on a closed connection. Any other panic is a failure, for
// which the supervisor backs off rather than restarting at once.
func panicErr(r any, conn *dbus.Conn) error {
	if conn == nil || conn.Context().Err() != nil {
		return fmt.Errorf("%w (systray: %v)", errBusLost, r)
	}
	return fmt.Errorf("systray: %v", r)
}
