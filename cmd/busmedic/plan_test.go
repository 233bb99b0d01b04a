package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"busmedic/appdb"
	"busmedic/relaunch/control"
	"busmedic/relaunch/control/controltest"
	"busmedic/watcher"
)

// planDaemon is a stand-in daemon with a running app, one that is not
// running and a casualty, which records the relaunches it is asked for.
type planDaemon struct {
	*controltest.Daemon
	mu         sync.Mutex
	relaunched []string
}

func newPlanDaemon() *planDaemon {
	return &planDaemon{Daemon: controltest.NewDaemon(control.Status{
		Buses: []control.BusStatus{{Name: "session", Up: true}, {Name: "system", Up: true}},
		Apps: []control.AppStatus{
			{ID: "dunst", Bus: "session", Action: "relaunch", Enabled: true, Running: true, PIDs: []int{4242}},
			{ID: "nm", Bus: "session", Action: "relaunch", Enabled: true},
			{ID: "panel", Bus: "both", Action: "signal", Enabled: true, Running: true, PIDs: []int{77}},
		},
		Casualties: []control.Casualty{{ID: "casualty:1", Bus: "session", At: time.Now(),
			Peer: watcher.Peer{UniqueName: ":1.9", PID: 99, Argv: []string{"/usr/bin/blueman-applet", "--tray"}, Cwd: "/home/ada"}}},
	})}
}

func (d *planDaemon) RelaunchNow(ctx context.Context, id string) (control.Job, error) {
	d.mu.Lock()
	d.relaunched = append(d.relaunched, id)
	d.mu.Unlock()
	return control.Job{App: id, Outcome: control.Relaunched, PID: 4343}, nil
}

func (d *planDaemon) asked() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.relaunched...)
}

func (d *planDaemon) DryRun(bus string) ([]control.PlannedJob, error) {
	dunst := appdb.NewRule("dunst")
	panel := appdb.NewRule("panel")
	panel.Action, panel.Signal = appdb.ActionSignal, "SIGHUP"
	switch bus {
	case "session":
		return []control.PlannedJob{
			{App: "dunst", Bus: bus, Rule: dunst, Peers: []watcher.Peer{{PID: 4242}}, Command: []string{"/usr/bin/dunst", "-verbosity", "crit"}, Dir: "/home/ada"},
			{App: "panel", Bus: bus, Rule: panel, Peers: []watcher.Peer{{PID: 77}}},
		}, nil
	case "system":
		return []control.PlannedJob{{App: "panel", Bus: bus, Rule: panel, Peers: []watcher.Peer{{PID: 77}}, Skip: "paused"}}, nil
	}
	return nil, fmt.Errorf("no bus %q", bus)
}

// TestRelaunchAsks: "busmedic relaunch" of an app that runs on its bus
// would stop it: it refuses, says what would happen and how to go ahead
// (--force), and relaunches nothing; --dry-run and "busmedic plan" say
// what a restart would do now, from the daemon's dry run.
func TestRelaunchAsks(t *testing.T) {
	d := newPlanDaemon()
	socket := controltest.Serve(t, d)
	bin := busmedicBinary(t)
	cli := func(args ...string) (code int, stdout, stderr string) {
		t.Helper()
		cmd := exec.Command(bin, append([]string{args[0], "--socket", socket}, args[1:]...)...)
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, out.String(), errOut.String()
	}
	for _, tc := range []struct {
		args     []string
		code     int
		stdout   []string // each in stdout
		stderr   []string // each in stderr
		relaunch []string // what the daemon was asked to relaunch by the command
	}{
		{[]string{"relaunch", "dunst"}, exitError, nil, []string{
			"busmedic relaunch: dunst is running (pid 4242) on the session bus: relaunching it would stop it and start it again.",
			"To do that: busmedic relaunch --force dunst", "busmedic relaunch --dry-run dunst"}, nil},
		{[]string{"relaunch", "panel"}, exitError, nil, []string{"panel is running (pid 77) on the session bus"}, nil},
		{[]string{"relaunch", "--force", "dunst"}, exitOK, []string{"dunst: relaunched"}, nil, []string{"dunst"}},
		{[]string{"relaunch", "dunst", "--force"}, exitOK, []string{"dunst: relaunched"}, nil, []string{"dunst"}},
		{[]string{"relaunch", "nm"}, exitOK, []string{"nm: relaunched"}, nil, []string{"nm"}},
		{[]string{"relaunch", "casualty:1"}, exitOK, []string{"casualty:1: relaunched"}, nil, []string{"casualty:1"}},
		{[]string{"relaunch", "--dry-run", "dunst"}, exitOK, []string{
			"dunst is running (pid 4242) on the session bus: busmedic relaunch --force dunst would stop it and start it again.",
			"If the session bus restarted now:\n  dunst\n    it matches pid 4242\n    after 2s without it reconnecting, busmedic would relaunch it",
			"    command: /usr/bin/dunst -verbosity crit\n    in: /home/ada\n"}, nil, nil},
		{[]string{"relaunch", "--dry-run", "nm"}, exitOK, []string{"nm is not running: busmedic relaunch nm would start it.",
			"If the session bus restarted now:\n  nm is not on it: busmedic would not touch it"}, nil, nil},
		{[]string{"relaunch", "--dry-run", "casualty:1"}, exitOK, []string{"busmedic relaunch casualty:1 would start it again",
			"command: /usr/bin/blueman-applet --tray\n  in: /home/ada"}, nil, nil},
		{[]string{"relaunch", "--dry-run", "nosuch"}, exitError, nil, []string{"no such app or casualty: nosuch"}, nil},
		{[]string{"plan"}, exitOK, []string{"If the session bus restarted now:\n  dunst\n", "  panel\n    it matches pid 77\n    after 2s without it reconnecting, busmedic would send it SIGHUP\n",
			"If the system bus restarted now:\n  panel\n    it matches pid 77\n    busmedic would skip it: paused\n"}, nil, nil},
		{[]string{"plan", "panel"}, exitOK, []string{"If the session bus restarted now:\n  panel\n", "If the system bus restarted now:\n  panel\n"}, nil, nil},
		{[]string{"plan", "nosuch"}, exitError, nil, []string{"busmedic plan: no such app or casualty: nosuch"}, nil},
		{[]string{"plan", "a", "b"}, exitUsage, nil, []string{`unexpected argument "b"`}, nil},
	} {
		before := len(d.asked())
		code, stdout, stderr := cli(tc.args...)
		name := "busmedic " + strings.Join(tc.args, " ")
		if code != tc.code {
			t.Errorf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", name, code, tc.code, stdout, stderr)
		}
		for _, want := range tc.stdout {
			if !strings.Contains(stdout, want) {
				t.Errorf("%s: stdout lacks %q:\n%s", name, want, stdout)
			}
		}
		for _, want := range tc.stderr {
			if !strings.Contains(stderr, want) {
				t.Errorf("%s: stderr lacks %q:\n%s", name, want, stderr)
			}
		}
		if got := d.asked()[before:]; strings.Join(got, " ") != strings.Join(tc.relaunch, " ") {
			t.Errorf("%s: relaunches asked for %q, want %q", name, got, tc.relaunch)
		}
	}
	// The plan of one app holds no other.
	if _, out, _ := cli("plan", "dunst"); strings.Contains(out, "panel") {
		t.Errorf("busmedic plan dunst:\n%s", out)
	}
}
