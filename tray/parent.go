package tray

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// parentEnv carries the supervisor's pid to the child. Its stdin is then a
// pipe whose other end only the supervisor holds: EOF on it means the
// supervisor is gone, however it died.
const parentEnv = "BUSMEDIC_TRAY_PARENT"

// watchParent cancels ctx with errParentGone when the supervisor that
// started this process goes away. Pdeathsig (set by Supervise) covers most
// deaths; the pipe covers the rest, such as a supervisor thread exit
// raising Pdeathsig too early or too late, or a double fork. It does
// nothing when the tray was not started by Supervise.
func watchParent(ctx context.Context, cancel context.CancelCauseFunc) (stop func(), err error) {
	v := os.Getenv(parentEnv)
	if v == "" {
		return func() {}, nil
	}
	pid, err := strconv.Atoi(v)
	if err != nil {
		return nil, fmt.Errorf("%s=%q: %w", parentEnv, v, err)
	}
	// The supervisor may have died before we got here, and we been
	// reparented.
	if os.Getppid() != pid {
		return nil, errParentGone
	}
	// Non-blocking, so that the read below goes through the poller and
	// a deadline can end it.
	if err := unix.SetNonblock(0, true); err != nil {
		return nil, fmt.Errorf("parent pipe: %w", err)
	}
	pipe := os.NewFile(0, "supervisor pipe")
	done := make(chan struct{})
	go func() {
		defer close(done)
		var b [64]byte
		for {
			_, err := pipe.Read(b[:])
			if err == io.EOF {
				cancel(errParentGone)
				return
			}
			if err != nil { // the deadline set by stop, or a broken pipe
				if ctx.Err() == nil && !os.IsTimeout(err) {
					cancel(fmt.Errorf("%w (%v)", errParentGone, err))
				}
				return
			}
		}
	}()
	return func() {
		pipe.SetReadDeadline(time.Unix(1, 0))
		<-done
	}, nil
}
