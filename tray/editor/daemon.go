package editor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"busmedic/relaunch/control"
)

// requestTimeout bounds one request to the daemon, so that a stuck daemon
// leaves the window usable. Relaunch gets longer: it waits for the app.
const (
	requestTimeout  = 5 * time.Second
	relaunchTimeout = 60 * time.Second
	// retryEvery is how often the editor looks for a daemon that is not
	// running, to drop the banner when it starts.
	retryEvery = 2 * time.Second
)

// daemonLink reaches the daemon over its control socket. Each request
// dials its own connection: a Watch uses up the client it runs on, and the
// socket is local and cheap.
type daemonLink struct {
	path string
	log  *slog.Logger
}

// call runs fn on a fresh client, with a timeout.
func (l daemonLink) call(ctx context.Context, timeout time.Duration, fn func(context.Context, *control.Client) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c, err := control.Dial(ctx, l.path)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(ctx, c)
}

// follow reports the daemon's status at every change until ctx is done:
// st is nil, with the reason, while the daemon is not running or its
// connection broke, and follow tries again every retryEvery.
func (l daemonLink) follow(ctx context.Context, report func(st *control.Status, err error)) {
	for {
		err := l.watchOnce(ctx, report)
		if ctx.Err() != nil {
			return
		}
		report(nil, err)
		t := time.NewTimer(retryEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// watchOnce follows one connection until it ends.
func (l daemonLink) watchOnce(ctx context.Context, report func(*control.Status, error)) error {
	c, err := control.Dial(ctx, l.path)
	if err != nil {
		return err
	}
	defer c.Close()
	ch, err := c.Watch(ctx)
	if err != nil {
		return err
	}
	for st := range ch {
		report(&st, nil)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	l.log.Info("daemon connection ended", "socket", l.path)
	return fmt.Errorf("%w (the daemon hung up)", control.ErrNotRunning)
}

// notRunning reports whether err means that no daemon answers.
func notRunning(err error) bool { return errors.Is(err, control.ErrNotRunning) }
