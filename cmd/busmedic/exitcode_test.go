package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"busmedic/relaunch/control"
	"busmedic/relaunch/control/controltest"
)

// standIn is a stand-in daemon behind a real control socket, which fails
// where a test wants a client command to fail.
type standIn struct{ *controltest.Daemon }

func (standIn) History(n int) ([]control.Recovery, error) {
	if n == 13 {
		return nil, errors.New("history.jsonl: permission denied")
	}
	return nil, nil
}

// RelaunchNow answers as the engine does: a job that ran and failed is an
// answer, not an error; only an unknown app is an error.
func (standIn) RelaunchNow(ctx context.Context, id string) (control.Job, error) {
	switch id {
	case "dunst":
		return control.Job{App: id, Outcome: control.Relaunched, PID: 42}, nil
	case "ghost":
		return control.Job{App: id, Outcome: control.Failed, Reason: "exec not found: /nonexistent/ghost-app"}, nil
	case "stuck":
		return control.Job{App: id, Outcome: control.Cancelled, Reason: "busmedic is stopping"}, nil
	}
	return control.Job{}, fmt.Errorf("relaunch %s: %w", id, control.ErrUnknownApp) // as the engine says it
}

func (standIn) RestartBus(ctx context.Context, bus string) error {
	if bus == "system" {
		return errors.New("cannot restart the system bus: no systemd")
	}
	return nil
}

func (standIn) Reload() error {
	return errors.New("apps.toml:3: app.grace: not a duration")
}
func (standIn) Pause()  {}
func (standIn) Resume() {}

// TestExitCodes runs the built command for the failure cases of every
// client command, against no daemon and against a stand-in daemon that
// fails: 1 when the command failed, 2 when the command line is wrong, 3 when
// "status" finds no daemon, as the README says.
func TestExitCodes(t *testing.T) {
	up := controltest.Serve(t, standIn{controltest.NewDaemon(control.Status{})})
	down := filepath.Join(t.TempDir(), "none.sock")
	for _, tc := range []struct {
		args   []string
		socket string // passed as --socket after the command
		code   int
		stderr string
	}{
		// No daemon.
		{[]string{"status"}, down, exitNotRunning, "not running"},
		{[]string{"history"}, down, exitError, "not running"},
		{[]string{"relaunch", "dunst"}, down, exitError, "not running"},
		{[]string{"restart-bus"}, down, exitError, "not running"},
		{[]string{"pause"}, down, exitError, "not running"},
		{[]string{"resume"}, down, exitError, "not running"},
		{[]string{"reload"}, down, exitError, "not running"},
		// The daemon answers that the command failed.
		{[]string{"relaunch", "ghost"}, up, exitError, "ghost: failed"},
		{[]string{"relaunch", "stuck"}, up, exitError, "stuck: cancelled"},
		{[]string{"relaunch", "nosuch"}, up, exitError, "busmedic relaunch: no app or casualty \"nosuch\" (busmedic status lists them)\n"},
		{[]string{"history", "-n", "13"}, up, exitError, "permission denied"},
		{[]string{"restart-bus", "system"}, up, exitError, "no systemd"},
		{[]string{"reload"}, up, exitError, "not a duration"},
		// The same commands that work, as a check on the stand-in.
		{[]string{"status"}, up, exitOK, ""},
		{[]string{"history"}, up, exitOK, ""},
		{[]string{"relaunch", "dunst"}, up, exitOK, ""},
		{[]string{"restart-bus", "session"}, up, exitOK, ""},
		{[]string{"pause"}, up, exitOK, ""},
		{[]string{"resume"}, up, exitOK, ""},
		// A wrong command line, whether a daemon runs or not.
		{[]string{"status", "now"}, up, exitUsage, `unexpected argument "now"`},
		{[]string{"status", "--yaml"}, up, exitUsage, "-yaml"},
		{[]string{"history", "all"}, up, exitUsage, `unexpected argument "all"`},
		{[]string{"history", "-n", "x"}, up, exitUsage, "-n"},
		{[]string{"relaunch"}, up, exitUsage, "missing argument"},
		{[]string{"relaunch", "a", "b"}, up, exitUsage, `unexpected argument "b"`},
		{[]string{"restart-bus", "sesion"}, up, exitUsage, `no bus "sesion"`},
		{[]string{"restart-bus", "session", "system"}, up, exitUsage, `unexpected argument "system"`},
		{[]string{"pause", "5m"}, up, exitUsage, `unexpected argument "5m"`},
		{[]string{"resume", "x"}, down, exitUsage, `unexpected argument "x"`},
		{[]string{"reload", "x"}, down, exitUsage, `unexpected argument "x"`},
		{[]string{"watch", "x"}, "", exitUsage, `unexpected argument "x"`},
		{[]string{"watch", "--bus", "bogus:x=1"}, "", exitUsage, "bogus:x=1"},
	} {
		args := tc.args[:1:1]
		if tc.socket != "" {
			args = append(args, "--socket", tc.socket)
		}
		args = append(args, tc.args[1:]...)
		cmd := exec.Command(busmedicBinary(t), args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		code := 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.code || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("busmedic %s: exit %d, want %d and %q on stderr\nstdout: %s\nstderr: %s",
				strings.Join(tc.args, " "), code, tc.code, tc.stderr, &stdout, &stderr)
		}
	}
}

// TestRelaunchFailureExits1 runs the real daemon with a rule whose program
// does not exist: busmedic relaunch says why and exits 1, and so does a
// reload of a rules file that does not validate.
func TestRelaunchFailureExits1(t *testing.T) {
	s := newSession(t, `version = 1
[[app]]
id = "ghost"
names = ["org.example.Ghost"]
exec = ["/nonexistent/ghost-app"]
grace = "100ms"
`)
	s.start()
	s.await("the session bus up", busUp("session", true))
	client := func(args ...string) (int, string) {
		t.Helper()
		cmd := exec.Command(busmedicBinary(t), args...)
		cmd.Env = s.env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode(), out.String()
		} else if err != nil {
			t.Fatal(err)
		}
		return 0, out.String()
	}
	if code, out := client("relaunch", "ghost"); code != exitError || !strings.Contains(out, "exec not found") {
		t.Errorf("busmedic relaunch ghost: exit %d, want %d with the reason:\n%s", code, exitError, out)
	}
	// Said once, in words: the engine's own words are not repeated.
	if code, out := client("relaunch", "nosuch"); code != exitError || out != "busmedic relaunch: no app or casualty \"nosuch\" (busmedic status lists them)\n" {
		t.Errorf("busmedic relaunch nosuch: exit %d, want %d and the words of the CLI:\n%s", code, exitError, out)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "config/busmedic/apps.toml"), []byte("version = 1\n[[app]]\nid = 3\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := client("reload"); code != exitError {
		t.Errorf("busmedic reload of a broken rules file: exit %d, want %d:\n%s", code, exitError, out)
	}
	if code, out := client("status"); code != exitOK {
		t.Errorf("busmedic status: exit %d:\n%s", code, out)
	}
}
