package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"busmedic/relaunch/control"
)

// follower is a running "busmedic status --follow", its output read line
// by line as it comes.
type follower struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout chan string
	stderr chan string
}

func (s *session) follow(args ...string) *follower {
	s.t.Helper()
	f := &follower{t: s.t, stdout: make(chan string, 256), stderr: make(chan string, 256)}
	f.cmd = exec.Command(busmedicBinary(s.t), append([]string{"status", "--follow"}, args...)...)
	f.cmd.Env = s.env
	f.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := f.cmd.StdoutPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	errOut, err := f.cmd.StderrPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	if err := f.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	lines := func(r io.Reader, to chan<- string) {
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			to <- sc.Text()
		}
		close(to)
	}
	go lines(out, f.stdout)
	go lines(errOut, f.stderr)
	s.t.Cleanup(func() {
		f.cmd.Process.Kill()
		f.cmd.Wait()
	})
	return f
}

// line waits for a line of from that satisfies ok, and returns it.
func (f *follower) line(from <-chan string, what string, ok func(string) bool) string {
	f.t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	var seen []string
	for {
		select {
		case l, open := <-from:
			if !open {
				f.t.Fatalf("waiting for %s: busmedic status --follow ended; it printed:\n%s", what, strings.Join(seen, "\n"))
			}
			if ok(l) {
				return l
			}
			seen = append(seen, l)
		case <-timer.C:
			f.t.Fatalf("waiting for %s: not within %s; it printed:\n%s", what, deadline, strings.Join(seen, "\n"))
		}
	}
}

// status waits for a status line (--json) that satisfies ok.
func (f *follower) status(what string, ok func(control.Status) bool) control.Status {
	f.t.Helper()
	var st control.Status
	f.line(f.stdout, what, func(l string) bool {
		st = control.Status{}
		if err := json.Unmarshal([]byte(l), &st); err != nil {
			f.t.Fatalf("busmedic status --follow --json printed %q: %v", l, err)
		}
		return ok(st)
	})
	return st
}

// "busmedic status --follow" shows the status at each change, waits for a
// busmedic that is not running yet or any more, and ends on Ctrl-C with 0;
// with --json, one status a line.
func TestStatusFollow(t *testing.T) {
	s := newSession(t, "version = 1\n")
	js := s.follow("--json")
	text := s.follow()
	for _, f := range []*follower{js, text} {
		f.line(f.stderr, "that busmedic is not running", func(l string) bool {
			return strings.Contains(l, "busmedic is not running") && strings.HasSuffix(l, "; waiting for it")
		})
	}

	s.start()
	js.status("the session bus up", busUp("session", true))
	text.line(text.stdout, "the session bus up in words", func(l string) bool { return strings.HasPrefix(l, "session bus: up") })

	s.bus.Kill()
	js.status("the session bus down", busUp("session", false))
	text.line(text.stdout, "a new status under the time of the change", func(l string) bool {
		_, err := time.Parse("-- 15:04:05 --", l)
		return err == nil
	})
	text.line(text.stdout, "the session bus down in words", func(l string) bool { return strings.HasPrefix(l, "session bus: DOWN") })
	s.bus.Start()
	js.status("the session bus up again", busUp("session", true))

	s.daemon.Process.Signal(syscall.SIGTERM)
	<-s.exited
	js.line(js.stderr, "that busmedic went away", func(l string) bool { return strings.Contains(l, "busmedic is not running") })

	for _, f := range []*follower{js, text} {
		f.cmd.Process.Signal(syscall.SIGINT)
		if err := f.cmd.Wait(); err != nil {
			t.Errorf("busmedic status --follow %v after Ctrl-C: %v, want exit 0", f.cmd.Args[3:], err)
		}
	}
}
