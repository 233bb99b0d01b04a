package tray

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// Restart timing of Supervise.
const (
	// firstDelay is the wait before restarting a tray that failed after
	// running a while (one that lost its bus is restarted at once).
	firstDelay = 200 * time.Millisecond
	// maxDelay caps the backoff of a tray that keeps failing. There is
	// no give-up: the icon is the user's only view of busmedic, and a
	// tray that fails every 30 s costs little.
	maxDelay = 30 * time.Second
	// stableAfter is how long a tray must run for its exit to count as
	// a new failure rather than the next of a series.
	stableAfter = time.Minute
	// minBusLife is how long a tray must run for ExitBusLost to be
	// taken at its word: one that loses its bus at once is failing.
	minBusLife = time.Second
	// busStableAfter is how long a tray must run for a lost bus to start a
	// new series: buses do not restart every few seconds, trays that keep
	// failing in a way that looks like it might.
	busStableAfter = 10 * time.Second
	// stopGrace is how long a tray has between SIGTERM and SIGKILL.
	stopGrace = 5 * time.Second
)

// Supervise runs the tray child that start returns and restarts it when it
// exits, until ctx is done or the child exits with ExitQuit (the user chose
// Quit). When ctx is done it stops the child with SIGTERM, then SIGKILL
// after a grace time, and returns once it has exited.
//
// start must return a new, unstarted command each time, such as
// exec.Command(os.Args[0], "tray"). Supervise sets its stdin, its parent
// death signal and one variable of its environment, by which the child
// learns that it is supervised (see Run).
func Supervise(ctx context.Context, start func() *exec.Cmd, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	supervise(ctx, func(ctx context.Context) (int, error) { return runChild(ctx, start(), log) }, log)
}

// supervise is the restart loop, apart from processes so that its timing
// can be tested on a fake clock.
func supervise(ctx context.Context, run func(context.Context) (int, error), log *slog.Logger) {
	delay := firstDelay
	for ctx.Err() == nil {
		began := time.Now()
		code, err := run(ctx)
		if ctx.Err() != nil {
			return
		}
		lived := time.Since(began)
		if err == nil && code == ExitQuit {
			log.Info("tray quit; not restarting it", "ran", lived.Round(time.Millisecond))
			return
		}
		var wait time.Duration
		wait, delay = nextDelay(code, err, lived, delay)
		log.Warn("tray exited; restarting it", "code", code, "err", err, "ran", lived.Round(time.Millisecond), "in", wait)
		timer := time.NewTimer(wait)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return
		}
	}
}

// nextDelay decides how long to wait before the next start, given how the
// last child ended and the current backoff, and returns the next backoff.
func nextDelay(code int, err error, lived, delay time.Duration) (wait, next time.Duration) {
	if err == nil && (lived >= stableAfter || code == ExitBusLost && lived >= busStableAfter) {
		delay = firstDelay // a long run: a fresh series
	}
	if err == nil && code == ExitBusLost && lived >= minBusLife && delay <= firstDelay {
		// A working tray that lost its bus: the new one waits for the
		// bus itself, so start it at once and the icon is back as soon
		// as the bus and the panel are. Once per series: a tray that
		// keeps losing its bus backs off like any failing one.
		return 0, firstDelay * 2
	}
	return delay, min(delay*2, maxDelay)
}

// runChild starts cmd and waits for it; code is its exit status, -1 if a
// signal ended it.
func runChild(ctx context.Context, cmd *exec.Cmd, log *slog.Logger) (code int, err error) {
	// Pdeathsig fires when the thread that forked the child exits, not
	// when the process does, and the Go runtime may retire idle threads:
	// keep this goroutine, and so the forking thread, until the child
	// has exited.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	// The child sees EOF on this pipe when we are gone, however we go.
	r, w, err := os.Pipe()
	if err != nil {
		return -1, fmt.Errorf("tray pipe: %w", err)
	}
	defer w.Close()
	cmd.Stdin = r
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, parentEnv+"="+strconv.Itoa(os.Getpid()))
	err = cmd.Start()
	r.Close()
	if err != nil {
		return -1, fmt.Errorf("start tray: %w", err)
	}
	log.Info("tray started", "pid", cmd.Process.Pid)

	// Stopping: SIGTERM, then SIGKILL if it lingers.
	exited, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-exited:
			return
		case <-ctx.Done():
		}
		cmd.Process.Signal(syscall.SIGTERM)
		timer := time.NewTimer(stopGrace)
		defer timer.Stop()
		select {
		case <-exited:
		case <-timer.C:
			log.Warn("tray ignored SIGTERM; killing it", "pid", cmd.Process.Pid)
			cmd.Process.Kill()
		}
	}()
	err = cmd.Wait()
	close(exited)
	<-stopped
	if cmd.ProcessState == nil {
		return -1, err
	}
	return cmd.ProcessState.ExitCode(), nil
}
