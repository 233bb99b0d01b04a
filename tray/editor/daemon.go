package editor

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"busmedic/relaunch/control"
)

// requestTimeout bounds one request to the daemon, so that a stuck daemon
// leaves the window usable. Relaunch gets longer: it waits for the app.
const (
	requestTimeout  = 5 * time.Second
	relaunchTimeout = 60 * time.Second
)

// daemonLink reaches the daemon over its control socket, through one
// client for the window's lifetime, which connects again when the daemon
// comes back.
type daemonLink struct {
	client *control.Client
	log    *slog.Logger
}

// call runs fn on the client, with a timeout.
func (l daemonLink) call(ctx context.Context, timeout time.Duration, fn func(context.Context, *control.Client) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return fn(ctx, l.client)
}

// follow reports the daemon's status at every change until ctx is done:
// st is nil, with the reason, while the daemon is not running or its
// connection broke (control.Client.Follow tries again meanwhile).
func (l daemonLink) follow(ctx context.Context, report func(st *control.Status, err error)) {
	connected := false
	l.client.Follow(ctx, func(st *control.Status, err error) {
		if connected && st == nil {
			l.log.Info("daemon connection ended", "err", err)
		}
		connected = st != nil
		report(st, err)
	})
}

// notRunning reports whether err means that no daemon answers.
func notRunning(err error) bool { return errors.Is(err, control.ErrNotRunning) }
