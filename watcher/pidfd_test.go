package watcher

import (
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// A pidfd from the bus pins the peer's process: while it lives its start
// time is recorded; once it has exited, none is, since its pid may already
// be another process's.
func TestPinnedProcessInfo(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pidfd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Skipf("no pidfd on this kernel: %v", err)
	}
	defer unix.Close(pidfd)

	p, err := pinnedProcessInfo(0, pidfd) // the pid comes from the pidfd
	if err != nil || p.PID != cmd.Process.Pid || p.StartTime == 0 {
		t.Errorf("live process: %+v, %v; want pid %d with a start time", p, err, cmd.Process.Pid)
	}
	direct, _ := ProcessInfo(cmd.Process.Pid)
	if p.StartTime != direct.StartTime {
		t.Errorf("start time %d, /proc says %d", p.StartTime, direct.StartTime)
	}

	cmd.Process.Kill()
	// Exited but not reaped: /proc still has it, the pidfd says it is gone.
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	if _, err := unix.Poll(fds, 10_000); err != nil {
		t.Fatal(err)
	}
	if p, err := pinnedProcessInfo(cmd.Process.Pid, pidfd); err == nil && p.StartTime != 0 {
		t.Errorf("exited process: start time %d recorded, want none", p.StartTime)
	}
	cmd.Wait()
	if p, err := pinnedProcessInfo(cmd.Process.Pid, pidfd); err == nil && p.StartTime != 0 {
		t.Errorf("reaped process: %+v recorded with a start time", p)
	}
}
