package relaunch

import (
	"strings"
	"testing"
	"time"

	"busmedic/appdb"
	"busmedic/watcher"
)

// TestDecideUnit holds the states a user manager reports (systemctl
// --user show -p ActiveState,SubState,...) against what busmedic does.
func TestDecideUnit(t *testing.T) {
	down := time.Date(2025, 3, 4, 12, 0, 0, 0, time.UTC)
	before, after := down.Add(-time.Hour), down.Add(300*time.Millisecond)
	loaded := func(active, sub string, mainStart time.Time) unitState {
		return unitState{LoadState: "loaded", ActiveState: active, SubState: sub, Type: "simple", Restart: "no",
			Result: "success", MainPID: 4242, MainStart: mainStart}
	}
	with := func(st unitState, f func(*unitState)) unitState { f(&st); return st }
	for _, tc := range []struct {
		name string
		st   unitState
		want unitMove
	}{
		// A plain libdbus client in a Type=simple unit exits with 1
		// when its bus goes: the unit ends failed.
		{"simple unit failed with its bus", with(loaded("failed", "failed", before), func(s *unitState) {
			s.Result, s.MainPID = "exit-code", 0
		}), unitStart},
		// Restart=on-failure: systemd waits RestartSec, then starts it.
		{"waiting for Restart=", with(loaded("activating", "auto-restart", before), func(s *unitState) {
			s.Restart, s.Result, s.MainPID = "on-failure", "exit-code", 0
		}), unitWait},
		{"being started", with(loaded("activating", "start", after), func(s *unitState) { s.Type = "dbus" }), unitWait},
		{"being stopped", loaded("deactivating", "stop-sigterm", before), unitWait},
		// Type=dbus with BusName=: systemd stops it when the name
		// vanishes, with result success, even if it never used the bus.
		{"dbus unit stopped by systemd", with(loaded("inactive", "dead", before), func(s *unitState) {
			s.Type, s.MainPID = "dbus", 0
		}), unitStart},
		{"running a process started after the bus went down", loaded("active", "running", after), unitBack},
		{"running a process started as the bus went down", loaded("active", "running", down), unitBack},
		// Deaf: alive, off the bus, since before it went down.
		{"running a process from before", loaded("active", "running", before), unitRestart},
		{"reloading a process from before", loaded("reloading", "reload", before), unitRestart},
		{"active without a main process", with(loaded("active", "exited", time.Time{}), func(s *unitState) {
			s.MainPID = 0
		}), unitRestart},
		// The process exited and the manager has not yet reaped it.
		{"main process just exited", with(loaded("active", "running", before), func(s *unitState) { s.mainGone = true }), unitWait},
		{"fresh main process just exited", with(loaded("active", "running", after), func(s *unitState) { s.mainGone = true }), unitWait},
		{"unknown state", loaded("maintenance", "", before), unitWait},
		// A transient unit (systemd-run, a desktop's launcher) that is
		// gone: only its command can start the app.
		{"not found", unitState{LoadState: "not-found", ActiveState: "inactive", SubState: "dead"}, unitGone},
		{"masked", unitState{LoadState: "masked", ActiveState: "inactive", SubState: "dead"}, unitRefused},
		{"broken unit file", unitState{LoadState: "bad-setting", ActiveState: "inactive"}, unitRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := decideUnit(tc.st, down); got != tc.want {
				t.Errorf("decideUnit = %d, want %d", got, tc.want)
			}
		})
	}
}

// The words of the history: what busmedic found and what came back.
func TestUnitReasons(t *testing.T) {
	for _, tc := range []struct {
		st   unitState
		want string
	}{
		{unitState{ActiveState: "failed", Result: "exit-code", Type: "simple"}, "it had failed (exit-code)"},
		{unitState{ActiveState: "inactive", Result: "success", Type: "dbus"}, "it was stopped: systemd stops a Type=dbus unit whose bus name vanishes"},
		{unitState{ActiveState: "inactive", Result: "success", Type: "simple"}, "it was inactive"},
	} {
		if got := describeUnit(tc.st); got != tc.want {
			t.Errorf("describeUnit(%+v) = %q, want %q", tc.st, got, tc.want)
		}
	}
	for _, tc := range []struct {
		st         unitState
		sawRestart bool
		want       string
	}{
		{unitState{Restart: "on-failure"}, true, "unit u.service restarted itself (Restart=on-failure)"},
		{unitState{Restart: "always", NRestarts: 2}, false, "unit u.service restarted itself (Restart=always)"},
		{unitState{Restart: "on-failure"}, false, "unit u.service was started again by systemd"},
		{unitState{Restart: "no", NRestarts: 3}, false, "unit u.service was started again by systemd"},
	} {
		if got := cameBack("u.service", tc.st, tc.sawRestart); got != tc.want {
			t.Errorf("cameBack(%+v, %v) = %q, want %q", tc.st, tc.sawRestart, got, tc.want)
		}
	}
}

func TestJobUnit(t *testing.T) {
	rule := func(unit string) appdb.Rule { r := appdb.NewRule("x"); r.Unit = unit; return r }
	peer := func(unit string) watcher.Peer { return watcher.Peer{PID: 10, Unit: unit} }
	for _, tc := range []struct {
		name  string
		rule  appdb.Rule
		peers []watcher.Peer
		own   string
		want  string
	}{
		{"the rule's unit", rule("app-dunst@autostart.service"), []watcher.Peer{peer("other.service")}, "", "app-dunst@autostart.service"},
		{"the process's unit", rule(""), []watcher.Peer{peer(""), peer("app-dunst@autostart.service")}, "", "app-dunst@autostart.service"},
		{"no unit", rule(""), []watcher.Peer{peer("")}, "", ""},
		// Apps busmedic started itself run in busmedic's unit.
		{"busmedic's own unit", rule(""), []watcher.Peer{peer("my-busmedic.service")}, "my-busmedic.service", ""},
		{"busmedic's installed unit", rule(""), []watcher.Peer{peer("busmedic.service")}, "", ""},
		{"busmedic's autostart unit", rule(""), []watcher.Peer{peer("app-busmedic@autostart.service")}, "app-busmedic@autostart.service", ""},
		{"a rule naming busmedic's unit", rule("my-busmedic.service"), nil, "my-busmedic.service", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := jobUnit(tc.rule, tc.peers, tc.own); got != tc.want {
				t.Errorf("jobUnit = %q, want %q", got, tc.want)
			}
		})
	}
}

// The plan carries the unit a relaunch goes through.
func TestPlanUnit(t *testing.T) {
	set := parseRules(t, `
[[app]]
id = "dunst"
names = ["org.freedesktop.Notifications"]

[[app]]
id = "applet"
exe = "/usr/bin/applet"
unit = "app-applet@autostart.service"
`)
	uid := currentUID()
	dunst := watcher.Peer{UniqueName: ":1.1", Names: []string{"org.freedesktop.Notifications"}, PID: 10, UID: uid,
		Argv: []string{"dunst"}, Unit: "app-dunst@autostart.service"}
	applet := watcher.Peer{UniqueName: ":1.2", PID: 11, UID: uid, Exe: "/usr/bin/applet", Argv: []string{"applet"}}
	jobs, _ := plan(planInput{bus: "session", rules: set, snapshot: []watcher.Peer{dunst, applet}, now: time.Now()})
	var got []string
	for _, j := range jobs {
		got = append(got, j.App+":"+j.Unit)
	}
	if want := "dunst:app-dunst@autostart.service applet:app-applet@autostart.service"; strings.Join(got, " ") != want {
		t.Errorf("plan = %q, want %q", got, want)
	}
	jobs, _ = plan(planInput{bus: "session", rules: set, snapshot: []watcher.Peer{dunst}, now: time.Now(),
		ownUnit: "app-dunst@autostart.service"})
	if len(jobs) != 1 || jobs[0].Unit != "" {
		t.Errorf("plan with busmedic in dunst's unit: %+v, want no unit", jobs)
	}
}
