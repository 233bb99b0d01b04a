package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"busmedic/appdb"
	"busmedic/cmd/busmedic/internal/cli"
	"busmedic/relaunch/control"
	"busmedic/relaunch/control/controltest"
	"busmedic/watcher/bustest"
)

// happyDaemon is a stand-in daemon behind a real control socket that does
// whatever it is asked.
type happyDaemon struct{ *controltest.Daemon }

func (happyDaemon) History(n int) ([]control.Recovery, error) { return nil, nil }
func (happyDaemon) RelaunchNow(ctx context.Context, id string) (control.Job, error) {
	if id != "dunst" {
		return control.Job{}, fmt.Errorf("relaunch %s: %w", id, control.ErrUnknownApp)
	}
	return control.Job{App: id, Outcome: control.Relaunched, PID: 42, Started: time.Now()}, nil
}
func (happyDaemon) RestartBus(ctx context.Context, bus string) error { return nil }
func (happyDaemon) DryRun(bus string) ([]control.PlannedJob, error) {
	if bus != "session" {
		return []control.PlannedJob{}, nil
	}
	return []control.PlannedJob{{App: "dunst", Bus: bus, Rule: appdb.NewRule("dunst"), Command: []string{"dunst"}}}, nil
}
func (happyDaemon) Reload() error { return nil }
func (happyDaemon) Pause()        {}
func (happyDaemon) Resume()       {}

// stream says what a stream must hold: nothing, something, or either.
type stream int

const (
	empty stream = iota
	text
	either
)

// outcome is how a command line must end: its exit status, and what its
// stdout and stderr hold.
type outcome struct {
	code           int
	stdout, stderr stream
}

// TestEveryCommandLine runs the built busmedic with every command of the
// command table, alone and with each flag its help lists (and a value
// for each flag that takes one), and checks the exit status, which stream
// says something, and that no line says its prefix twice. Client commands
// talk to a stand-in daemon; run meets that daemon's lock and exits 1;
// watch and tray run until interrupted.
func TestEveryCommandLine(t *testing.T) {
	bin := busmedicBinary(t)
	bus := bustest.New(t)
	app := bus.StartApp("-name", "org.example.Table")
	up := controltest.Serve(t, happyDaemon{controltest.NewDaemon(control.Status{
		Buses: []control.BusStatus{{Name: "session", Up: true, Peers: 1}},
		Apps:  []control.AppStatus{{ID: "dunst", Bus: "session", Action: "relaunch", Enabled: true}},
	})})
	root := t.TempDir()
	userRules := filepath.Join(root, "config", "busmedic", "apps.toml")
	env := append(os.Environ(),
		"HOME="+root,
		"PATH=/usr/bin:/bin", // no busmedic-rules: "rules edit" fails
		"XDG_CONFIG_HOME="+filepath.Join(root, "config"),
		"XDG_CONFIG_DIRS="+filepath.Join(root, "etc"),
		"XDG_RUNTIME_DIR="+filepath.Join(root, "run"), // no daemon at the default socket, no user manager
		"XDG_STATE_HOME="+filepath.Join(root, "state"),
		"BUSMEDIC_CONFIG=",
		"DBUS_SESSION_BUS_ADDRESS="+bus.Address(),
		"DBUS_SYSTEM_BUS_ADDRESS="+bus.Address(),
	)
	if err := os.MkdirAll(filepath.Join(root, "run"), 0o700); err != nil {
		t.Fatal(err)
	}
	values := map[string]string{
		"config": userRules, "socket": up, "state-dir": filepath.Join(root, "state"), "n": "1",
		"bus": "session", "id": "t1", "action": "notify", "target": "default.target",
	}
	// The arguments a command needs, and what it does with them.
	args := map[string][]string{
		"busmedic relaunch":           {"dunst"},
		"busmedic rules add-from-pid": {strconv.Itoa(app.PID())},
		"busmedic rules check":        {userRules},
		"busmedic autostart enable":   nil,
		"busmedic restart-bus":        {"session"},
		"busmedic completion":         {"bash"},
		"busmedic rules help":         {"check"},
		"busmedic help":               {"status"},
		"busmedic autostart help":     {"enable"},
		"busmedic rules list":         nil,
		"busmedic rules path":         nil,
		"busmedic autostart status":   nil,
		"busmedic autostart disable":  nil,
		"busmedic rules edit":         nil,
		"busmedic watch":              nil,
		"busmedic keep":               {"--", "busmedic-no-such-program"}, // fails before it starts a keeper
		"busmedic tray":               nil,
		"busmedic status":             nil,
		"busmedic history":            nil,
		"busmedic plan":               nil,
		"busmedic pause":              nil,
		"busmedic resume":             nil,
		"busmedic reload":             nil,
		"busmedic version":            nil,
		"busmedic run":                nil,
		"busmedic":                    nil,
	}
	ok := outcome{exitOK, text, empty}
	quiet := outcome{exitOK, empty, empty}
	want := map[string]outcome{
		"busmedic":           {exitUsage, empty, text}, // no command
		"busmedic --version": ok,
		"busmedic -V":        ok,
		"busmedic --config":  {exitUsage, empty, text},
		// Listen meets the stand-in's lock: another busmedic runs.
		"busmedic run":                {exitError, empty, text},
		"busmedic status":             ok,
		"busmedic status (no daemon)": {exitNotRunning, empty, text},
		"busmedic status --follow":    ok,                      // until Ctrl-C
		"busmedic tray (no daemon)":   {exitOK, empty, either}, // waits for it
		"busmedic history":            ok,
		"busmedic plan":               ok,
		"busmedic relaunch":           ok,
		"busmedic restart-bus":        ok,
		"busmedic pause":              quiet,
		"busmedic resume":             quiet,
		"busmedic reload":             quiet,
		"busmedic tray":               {exitOK, empty, either}, // its log
		"busmedic watch":              ok,
		"busmedic watch -v":           {exitOK, text, either},
		"busmedic keep":               {exitError, empty, text},
		"busmedic rules list":         ok,
		"busmedic rules check":        ok,
		"busmedic rules add-from-pid": ok,
		"busmedic rules path":         ok,
		"busmedic rules edit":         {exitError, empty, text}, // not installed
		"busmedic rules help":         ok,
		"busmedic autostart enable":   {exitOK, text, either}, // warns: a temporary build
		"busmedic autostart disable":  ok,
		"busmedic autostart status":   ok,
		"busmedic autostart help":     ok,
		"busmedic version":            ok,
		"busmedic completion":         ok,
		"busmedic help":               ok,
	}
	n := 0
	everyCommand(func(words []string, c *cli.Command) {
		if c.Run == nil {
			return // only subcommands: TestWrongCommandLine
		}
		name := strings.Join(append([]string{"busmedic"}, words...), " ")
		base, known := args[name]
		if !known {
			t.Errorf("%s: no arguments for it in this test's table", name)
			return
		}
		in, err := program().Parse(words)
		if err != nil {
			t.Fatal(err)
		}
		var lines [][]string // the flags to give, one combination each
		lines = append(lines, nil)
		in.Flags.VisitAll(func(f *flag.Flag) {
			arg := []string{"--" + f.Name}
			if len(f.Name) == 1 {
				arg[0] = "-" + f.Name
			}
			if b, isBool := f.Value.(interface{ IsBoolFlag() bool }); !isBool || !b.IsBoolFlag() {
				arg = append(arg, values[f.Name])
			}
			lines = append(lines, arg)
		})
		for _, flags := range lines {
			cmdline := slices.Clone(words)
			line := name
			if len(flags) > 0 {
				line += " " + flags[0]
			}
			// A client command talks to the stand-in, but alone it
			// finds no daemon at the default socket; run always meets
			// the stand-in's lock (it would run for real otherwise).
			client := in.Flags.Lookup("socket") != nil
			switch {
			case client && len(flags) == 0 && name != "busmedic run":
				line += " (no daemon)"
			case client && (len(flags) == 0 || flags[0] != "--socket"):
				cmdline = append(cmdline, "--socket", up)
			}
			cmdline = append(append(cmdline, flags...), base...)
			o, found := want[line]
			switch {
			case !found && strings.HasSuffix(line, " (no daemon)"):
				o, found = outcome{exitError, empty, text}, true
			case !found:
				o, found = want[name]
			}
			if !found {
				t.Errorf("%s: no outcome for it in this test's table", line)
				return
			}
			n++
			t.Run(line, func(t *testing.T) {
				writeFile(t, userRules, "version = 1\n\n[[app]]\nid = \"dunst\"\nnames = [\"org.freedesktop.Notifications\"]\n")
				code, stdout, stderr := runBinary(t, bin, env, name == "busmedic watch" || name == "busmedic tray" || line == "busmedic status --follow", cmdline...)
				checkOutcome(t, cmdline, o, code, stdout, stderr)
			})
		}
	})
	if n < 60 {
		t.Errorf("only %d command lines tried", n)
	}
}

// TestJSONEmptyLists: with no rules and no history, status --json says
// "apps": [] and history --json [], not null.
func TestJSONEmptyLists(t *testing.T) {
	up := controltest.Serve(t, happyDaemon{controltest.NewDaemon(control.Status{})})
	if code, stdout, stderr := runCLI("status", "--json", "--socket", up); code != exitOK || !strings.Contains(stdout, `"apps": []`) ||
		!strings.Contains(stdout, `"buses": []`) || stderr != "" {
		t.Errorf("status --json with no rules: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if code, stdout, stderr := runCLI("history", "--json", "--socket", up); code != exitOK || stdout != "[]\n" || stderr != "" {
		t.Errorf("history --json with none: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// TestNotRunning: every client command says once, in words and with the
// next step, that busmedic is not running; "status" exits 3, the others 1;
// -v adds what the socket said.
func TestNotRunning(t *testing.T) {
	down := filepath.Join(t.TempDir(), "none.sock")
	for _, c := range topLevel().Subs {
		if c.Flags == nil || c.Name == "tray" || c.Name == "run" || c.FlagSet().Lookup("socket") == nil {
			continue
		}
		args := []string{c.Name, "--socket", down}
		var id []string
		if c.MinArgs > 0 {
			id = []string{"dunst"}
		}
		wantCode := exitError
		if c.Name == "status" {
			wantCode = exitNotRunning
		}
		want := "busmedic " + c.Name + ": busmedic is not running with the control socket " + down +
			" (start it with: busmedic run, or busmedic autostart enable)\n"
		code, stdout, stderr := runCLI(append(args, id...)...)
		if code != wantCode || stdout != "" || stderr != want {
			t.Errorf("busmedic %s: exit %d\nstdout: %q\nstderr: %q\nwant exit %d and stderr %q", strings.Join(args, " "), code, stdout, stderr, wantCode, want)
		}
		code, _, stderr = runCLI(append(append(args, "-v"), id...)...)
		if code != wantCode || !strings.HasPrefix(stderr, want+"  dial unix "+down+": ") || strings.Count(stderr, down) != 2 {
			t.Errorf("busmedic %s -v: exit %d, stderr %q; want the socket's error on a second line", strings.Join(args, " "), code, stderr)
		}
	}
}

// runBinary runs bin with args in env. With interrupt, the command runs
// until interrupted: it gets SIGINT once it has written to stdout, or
// after a second.
func runBinary(t *testing.T, bin string, env []string, interrupt bool, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	out := &signalBuffer{wrote: make(chan struct{})}
	var errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	if interrupt {
		select {
		case <-out.wrote:
		case <-time.After(time.Second):
		case err = <-done:
			t.Errorf("ended before it was interrupted: %v\nstderr: %s", err, &errOut)
			return -1, out.String(), errOut.String()
		}
		cmd.Process.Signal(syscall.SIGINT)
	}
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("busmedic %s: still running after 30s", strings.Join(args, " "))
	}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return code, out.String(), errOut.String()
}

// signalBuffer is a buffer that closes wrote at its first write.
type signalBuffer struct {
	mu    sync.Mutex
	b     bytes.Buffer
	wrote chan struct{}
}

func (s *signalBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() == 0 && len(p) > 0 {
		close(s.wrote)
	}
	return s.b.Write(p)
}

func (s *signalBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// checkOutcome compares how a command line ended with o.
func checkOutcome(t *testing.T, cmdline []string, o outcome, code int, stdout, stderr string) {
	t.Helper()
	has := func(s stream, out string) bool {
		return s == either || (s == text) == (strings.TrimSpace(out) != "")
	}
	if code != o.code || !has(o.stdout, stdout) || !has(o.stderr, stderr) {
		t.Errorf("busmedic %s: exit %d, want %d\nstdout (want %v):\n%s\nstderr (want %v):\n%s",
			strings.Join(cmdline, " "), code, o.code, o.stdout, stdout, o.stderr, stderr)
	}
	for _, line := range strings.Split(stdout+stderr, "\n") {
		if strings.HasPrefix(line, " ") {
			continue // a list, as in the help: not a message
		}
		if stutters(line) {
			t.Errorf("busmedic %s: says a prefix twice: %q", strings.Join(cmdline, " "), line)
		}
	}
	if o.stderr == text && strings.Count(stderr, "Usage:") > 1 {
		t.Errorf("busmedic %s: usage said more than once:\n%s", strings.Join(cmdline, " "), stderr)
	}
}

func (s stream) String() string { return [...]string{"empty", "text", "either"}[s] }

// stutters reports whether a line says a prefix twice: "busmedic X:
// busmedic X: ...", "busmedic relaunch: relaunch nosuch: ...", "relaunch
// nosuch: relaunch: ...".
func stutters(line string) bool {
	segs := strings.Split(line, ": ")
	first := strings.Fields(segs[0])
	for i := 1; i < len(segs); i++ {
		words := strings.Fields(segs[i])
		if segs[i] == segs[0] {
			return true
		}
		if i == len(segs)-1 || len(words) > 3 {
			continue // the message, not a prefix
		}
		// A prefix that names the command again ("relaunch nosuch",
		// "control relaunch"), or starts as the one before it.
		for _, w := range words {
			if len(first) > 1 && slices.Contains(first[1:], w) {
				return true
			}
		}
		if prev := strings.Fields(segs[i-1]); len(words) > 0 && len(prev) > 0 && words[0] == prev[0] {
			return true
		}
	}
	return false
}

func TestStutters(t *testing.T) {
	for line, want := range map[string]bool{
		`busmedic relaunch nosuch: relaunch nosuch: relaunch: no such app or casualty`:                         true,
		`busmedic relaunch: relaunch nosuch: no such app or casualty`:                                          true,
		`busmedic status: busmedic status: not running`:                                                        true,
		`busmedic relaunch: control relaunch: daemon hung up`:                                                  true,
		`busmedic relaunch: no app or casualty "nosuch" (busmedic status lists them)`:                          false,
		`busmedic status: busmedic is not running (start it with: busmedic run, or busmedic autostart enable)`: false,
		`/home/u/apps.toml:4: warning: app "dunst": key exe: "/usr/bin/dunst" is also app "a"'s (line 2)`:      false,
		`session bus: up since 12:03:00 (1 peer)`:                                                              false,
	} {
		if got := stutters(line); got != want {
			t.Errorf("stutters(%q) = %v, want %v", line, got, want)
		}
	}
}
