package relaunch

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startSleeper starts a process of ours that runs until killed.
func startSleeper(t *testing.T) (*exec.Cmd, <-chan struct{}) {
	t.Helper()
	cmd := exec.Command("/bin/sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	return cmd, done
}

// A pid whose start time is not the one recorded (the pid was reused by
// another program) is never signalled.
func TestStopRefusesAnotherProcess(t *testing.T) {
	cmd, done := startSleeper(t)
	pid := cmd.Process.Pid
	start, _, err := procStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		start uint64
		want  error
	}{
		{"reused pid", start + 1, ErrNotSame},
		{"start time unknown", 0, ErrUnverifiable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := stopProcess(context.Background(), pid, tc.start, time.Second)
			if !errors.Is(err, tc.want) {
				t.Fatalf("stopProcess = %v, want %v", err, tc.want)
			}
			if err := signalProcess(pid, tc.start, 9); !errors.Is(err, tc.want) {
				t.Fatalf("signalProcess = %v, want %v", err, tc.want)
			}
			select {
			case <-done:
				t.Fatal("the process was signalled")
			default:
			}
		})
	}
	t.Run("same process", func(t *testing.T) {
		if err := stopProcess(context.Background(), pid, start, 5*time.Second); err != nil {
			t.Fatalf("stopProcess = %v", err)
		}
		<-done
		if err := stopProcess(context.Background(), pid, start, time.Second); !errors.Is(err, ErrGone) {
			t.Fatalf("stopProcess after exit = %v, want ErrGone", err)
		}
	})
}

// A process that ignores SIGTERM is killed after the stop timeout.
func TestStopEscalatesToKill(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	buf := make([]byte, 6)
	if _, err := out.Read(buf); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	start, _, _ := procStat(cmd.Process.Pid)
	if err := stopProcess(context.Background(), cmd.Process.Pid, start, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	<-done
	if !strings.Contains(cmd.ProcessState.String(), "killed") {
		t.Errorf("state %s, want killed", cmd.ProcessState)
	}
}

func TestCheckExecutable(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "prog")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkExecutable(prog); err != nil {
		t.Errorf("0755 file of ours: %v", err)
	}
	os.Chmod(prog, 0o775)
	if err := checkExecutable(prog); !errors.Is(err, ErrUnsafeExecutable) {
		t.Errorf("group-writable: %v, want ErrUnsafeExecutable", err)
	}
	if _, err := lookPath("no-such-program-busmedic", nil); err == nil || err.Error() != "exec not found: no-such-program-busmedic" {
		t.Errorf("lookPath: %v", err)
	}
}

// A started app runs in its own session with stdin from /dev/null and its
// output in its log, and is reaped when it exits.
func TestStartProcess(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "logs", "app.log")
	c, err := startProcess(startSpec{app: "app", argv: []string{"/bin/sh", "-c", "echo out; echo err >&2; cat; ps -o sid= -p $$; exit 4"},
		env: []string{"PATH=/usr/bin:/bin"}, log: log})
	if err != nil {
		t.Fatal(err)
	}
	<-c.exited
	if got := c.exitReason(); got != "exited with 4" {
		t.Errorf("exit reason %q", got)
	}
	b, _ := os.ReadFile(log)
	if !strings.Contains(string(b), "out\nerr\n") {
		t.Errorf("log: %q", b)
	}
	if _, state, err := procStat(c.pid); err == nil && state == 'Z' {
		t.Error("zombie left behind")
	}
}

// A log over the cap is moved aside when the app starts again.
func TestLogCapped(t *testing.T) {
	log := filepath.Join(t.TempDir(), "app.log")
	if err := os.WriteFile(log, make([]byte, logCap+1), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := startProcess(startSpec{app: "app", argv: []string{"/bin/true"}, log: log})
	if err != nil {
		t.Fatal(err)
	}
	<-c.exited
	old, err1 := os.Stat(log + ".1")
	cur, err2 := os.Stat(log)
	if err1 != nil || err2 != nil || old.Size() != logCap+1 || cur.Size() > 1024 {
		t.Errorf("after start: %v %v; .1 %d bytes, log %d bytes", err1, err2, old.Size(), cur.Size())
	}
}
