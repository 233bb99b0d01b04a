package tray

import (
	"bufio"
	"busmedic/watcher/bustest"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/sys/unix"
)

var quiet = slog.New(slog.DiscardHandler)

func TestNextDelay(t *testing.T) {
	for _, tc := range []struct {
		name        string
		code        int
		err         error
		lived, prev time.Duration
		wait, next  time.Duration
	}{
		{"first failure", ExitError, nil, time.Second, firstDelay, firstDelay, 2 * firstDelay},
		{"failures back off", ExitError, nil, time.Second, 3200 * time.Millisecond, 3200 * time.Millisecond, 6400 * time.Millisecond},
		{"capped", ExitError, nil, time.Second, maxDelay, maxDelay, maxDelay},
		{"ran long: fresh start", ExitError, nil, stableAfter, maxDelay, firstDelay, 2 * firstDelay},
		{"bus lost: at once", ExitBusLost, nil, 2 * time.Second, firstDelay, 0, 2 * firstDelay},
		{"bus lost after a long run: at once", ExitBusLost, nil, stableAfter, 8 * time.Second, 0, 2 * firstDelay},
		{"bus lost again soon: backs off", ExitBusLost, nil, 2 * time.Second, 2 * firstDelay, 2 * firstDelay, 4 * firstDelay},
		{"bus lost after a while: at once", ExitBusLost, nil, busStableAfter, 8 * time.Second, 0, 2 * firstDelay},
		{"bus lost at start: a failure", ExitBusLost, nil, 10 * time.Millisecond, 8 * time.Second, 8 * time.Second, 16 * time.Second},
		{"did not start", -1, errors.New("exec: no such file"), stableAfter, 8 * time.Second, 8 * time.Second, 16 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wait, next := nextDelay(tc.code, tc.err, tc.lived, tc.prev)
			if wait != tc.wait || next != tc.next {
				t.Errorf("nextDelay = %v, %v; want %v, %v", wait, next, tc.wait, tc.next)
			}
		})
	}
}

// TestSuperviseTiming runs the restart loop on synctest's fake clock with
// children that fail at once, then one that quits.
func TestSuperviseTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		codes := []int{ExitError, ExitError, ExitError, ExitBusLost, ExitError, ExitQuit}
		lives := []time.Duration{0, 0, 0, stableAfter, 0, 0}
		var starts []time.Duration
		t0 := time.Now()
		run := func(ctx context.Context) (int, error) {
			i := len(starts)
			starts = append(starts, time.Since(t0))
			<-time.After(lives[i]) // the child's life, on the fake clock
			return codes[i], nil
		}
		supervise(t.Context(), run, quiet)
		// 0; +200ms; +400ms; +800ms; lives a minute, loses its bus: at
		// once; the backoff goes on from there: +400ms; quits.
		want := []time.Duration{0, 200, 600, 1400, 61400, 61800}
		if len(starts) != len(want) {
			t.Fatalf("started at %v, want %v ms", starts, want)
		}
		for i := range want {
			if starts[i] != want[i]*time.Millisecond {
				t.Errorf("start %d at %v, want %vms", i, starts[i], want[i])
			}
		}
	})
}

func TestSuperviseStopsWhileWaiting(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		var runs atomic.Int32
		go func() {
			defer close(done)
			supervise(ctx, func(context.Context) (int, error) { runs.Add(1); return ExitError, nil }, quiet)
		}()
		synctest.Wait() // the first child failed; the loop waits to restart it
		cancel()
		<-done
		if n := runs.Load(); n != 1 {
			t.Errorf("%d runs, want 1", n)
		}
	})
}

// child returns a start function for this test binary in a child mode.
func child(mode string, env ...string) func() *exec.Cmd {
	return func() *exec.Cmd {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(append(os.Environ(), childEnv+"="+mode), env...)
		return cmd
	}
}

func TestSuperviseProcesses(t *testing.T) {
	t.Run("quit is final", func(t *testing.T) {
		var n int
		start := child("exit", childCodeEnv+"=0")
		Supervise(t.Context(), func() *exec.Cmd { n++; return start() }, quiet)
		if n != 1 {
			t.Errorf("started %d times, want 1", n)
		}
	})
	t.Run("failures restart", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		var n int
		start := child("exit", childCodeEnv+"=1")
		Supervise(ctx, func() *exec.Cmd {
			if n++; n == 3 {
				cancel() // the third child is the last
			}
			return start()
		}, quiet)
		if n != 3 {
			t.Errorf("started %d times, want 3", n)
		}
	})
	t.Run("stop", func(t *testing.T) {
		// A child that runs until told: cancelling ctx sends SIGTERM and
		// Supervise returns once it has exited.
		ctx, cancel := context.WithCancel(t.Context())
		var cmd *exec.Cmd
		out := make(chan string, 1)
		done := make(chan struct{})
		go func() {
			defer close(done)
			Supervise(ctx, func() *exec.Cmd {
				cmd = child("wait")()
				pipe, err := cmd.StdoutPipe()
				if err != nil {
					panic(err)
				}
				go func() {
					line, _ := bufio.NewReader(pipe).ReadString('\n')
					out <- line
				}()
				return cmd
			}, quiet)
		}()
		waitLine(t, out)
		cancel()
		select {
		case <-done:
		case <-time.After(deadline):
			t.Fatal("Supervise did not return after cancel")
		}
		if ws := cmd.ProcessState.Sys().(syscall.WaitStatus); ws.Signaled() {
			t.Errorf("child ended by %v, want a clean exit on SIGTERM", ws.Signal())
		}
	})
}

func waitLine(t *testing.T, lines <-chan string) string {
	t.Helper()
	select {
	case l := <-lines:
		return l
	case <-time.After(deadline):
		t.Fatal("child did not report")
	}
	return ""
}

// TestParentDeath kills a supervising process with SIGKILL: its tray child
// must not outlive it.
func TestParentDeath(t *testing.T) {
	sup := exec.Command(os.Args[0])
	sup.Env = append(os.Environ(), childEnv+"=supervisor")
	stdout, err := sup.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sup.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sup.Process.Kill(); sup.Wait() })
	lines := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- l
	}()
	var pid int
	if _, err := fmt.Sscanf(waitLine(t, lines), "pid %d", &pid); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	sup.Process.Kill()
	// The pidfd becomes readable when the child exits.
	end := time.Now().Add(deadline)
	var n int
	for {
		n, err = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, int(time.Until(end).Milliseconds()))
		if err != unix.EINTR || time.Now().After(end) {
			break
		}
	}
	if err != nil || n != 1 {
		t.Fatalf("child %d still running %s after its supervisor was killed (%v)", pid, deadline, err)
	}
}

// TestParentPipe checks the pipe alone, without Pdeathsig: a child whose
// supervisor's end of the pipe closes exits.
func TestParentPipe(t *testing.T) {
	cmd := child("wait", parentEnv+"="+strconv.Itoa(os.Getpid()))()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdin = r
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	lines := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		lines <- l
	}()
	waitLine(t, lines) // the child is watching
	w.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	if !strings.Contains(stderr.String(), errParentGone.Error()) {
		t.Errorf("child said %q, want %q", stderr.String(), errParentGone)
	}
}

// A panic in systray is the bus going away only if the item's connection
// is gone; otherwise it is a failure, which the supervisor backs off from.
func TestPanicErr(t *testing.T) {
	bus := bustest.New(t)
	conn := connect(t, bus)
	if err := panicErr("boom", conn); ExitCode(err) != ExitError {
		t.Errorf("panic on a live connection: %v, exit code %d; want %d", err, ExitCode(err), ExitError)
	}
	if err := panicErr("boom", nil); ExitCode(err) != ExitBusLost {
		t.Errorf("panic before registering: %v, exit code %d; want %d", err, ExitCode(err), ExitBusLost)
	}
	conn.Close()
	if err := panicErr("closed", conn); ExitCode(err) != ExitBusLost {
		t.Errorf("panic on a closed connection: %v, exit code %d; want %d", err, ExitCode(err), ExitBusLost)
	}
}
