package control_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"busmedic/appdb"
	"busmedic/relaunch/control"
	"busmedic/watcher"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// sample is a status and a history with something in every field, their
// times on 4 March 2025 in loc.
func sample(loc *time.Location) (control.Status, []control.Recovery) {
	at := time.Date(2025, 3, 4, 12, 3, 0, 0, loc)
	dunst := watcher.Peer{UniqueName: ":1.42", Names: []string{"org.freedesktop.Notifications"}, PID: 4242, UID: 1000,
		Exe: "/usr/bin/dunst", Argv: []string{"dunst", "-verbosity", "crit"}, Cwd: "/home/ada", PPID: 1, StartTime: 123456,
		Unit: "app-dunst@autostart.service"}
	relaunched := control.Job{App: "dunst", Bus: "session", Action: "relaunch", Outcome: control.Relaunched,
		PID: 4343, Started: at.Add(time.Second), Took: 340 * time.Millisecond}
	recovery := control.Recovery{Bus: "session", OldID: "0123abcd", ID: "4567ef01", Downtime: 1200 * time.Millisecond,
		Started: at, Ended: at.Add(2 * time.Second), Jobs: []control.Job{
			relaunched,
			{App: "panel", Bus: "session", Action: "signal", Outcome: control.Failed, Reason: "no such process", Started: at.Add(time.Second)},
			{App: "kept:irssi:4545", Bus: "session", Action: "keep", Outcome: control.Kept, PID: 4545,
				Reason: "kept: reconnected in 4 ms, 3 matches and 1 name replayed", Started: at.Add(time.Second), Took: 4 * time.Millisecond},
		}}
	replay := control.Replay{PID: 4545, Command: "irssi", Bus: "session", BusID: "4567ef01", Time: at.Add(time.Second),
		Took: 4 * time.Millisecond, Connections: 1, Matches: 3, Names: []string{"org.example.Irssi"}, Lost: []string{"org.example.Other"}}
	refusal := control.RestartRefusal{Bus: "session", PID: 42, StartedBy: "dbus-run-session", StartedByPID: 41,
		Reason: `the session bus (pid 42) was started by dbus-run-session, pid 41; to let busmedic restart it, run "busmedic run --manage-session-bus" in a session that does not start its own bus`}
	status := control.Status{
		Time: at.Add(time.Minute),
		Buses: []control.BusStatus{
			{Name: "session", Address: "unix:path=/run/user/1000/bus", Up: true, ID: "4567ef01", Since: at, Peers: 12,
				Outdated: "/usr/bin/dbus-daemon was replaced"},
			{Name: "system", Address: "unix:path=/run/dbus/system_bus_socket", Since: at, Reason: "connection reset"},
		},
		Apps: []control.AppStatus{
			{ID: "dunst", Name: "Dunst", Icon: "dunst", Bus: "session", Action: "relaunch", Enabled: true, Running: true,
				PIDs: []int{4343}, Last: &relaunched},
			{ID: "panel", Name: "Panel", Bus: "session", Action: "signal"},
		},
		Casualties:            []control.Casualty{{ID: "casualty:1", Bus: "session", Peer: dunst, At: at}},
		LastRecovery:          &recovery,
		RulesError:            "apps.toml:3: key exe: not absolute",
		SessionRestartRefused: refusal.Reason,
		SessionRestartRefusal: &refusal,
		Tray:                  &control.TrayStatus{Show: control.TrayWhenNeeded, Host: &control.TrayHost{}},
		Kept: []control.KeptApp{{PID: 4545, StartTime: 234567, Command: "irssi", Bus: "session", Since: at.Add(-time.Hour),
			Connections: 1, UniqueNames: []string{":1.7"}, Names: []string{"org.example.Irssi"}, Restarts: 3,
			Lost: []string{"org.example.Other"}, LastReplay: &replay}},
	}
	history := []control.Recovery{recovery, {Bus: "system", OldID: "89ab", ID: "cdef", Started: at.Add(-time.Hour),
		Decision: "session ending: no recovery", Jobs: []control.Job{}}}
	return status, history
}

// The JSON of Status and Recovery is also the output of "busmedic status
// --json" and "busmedic history --json", which scripts read: these golden
// files pin every field name. A change here is a change for those scripts.
func TestJSONStable(t *testing.T) {
	status, history := sample(time.UTC)
	goldenJSON(t, "status.json", status)
	goldenJSON(t, "history.json", history)

	dunst := status.Casualties[0].Peer
	// The plan (the editor's dry run) carries the rule whole, and the
	// unit a relaunch goes through.
	rule := appdb.NewRule("dunst")
	rule.Names, rule.Exe, rule.Unit = dunst.Names, dunst.Exe, dunst.Unit
	plan := []control.PlannedJob{
		{App: "dunst", Bus: "session", Rule: rule, Peers: []watcher.Peer{dunst}, Command: dunst.Argv, Dir: dunst.Cwd,
			Unit: dunst.Unit},
		{App: "panel", Bus: "session", Rule: appdb.NewRule("panel"), Peers: []watcher.Peer{}, Skip: "paused"},
	}
	goldenJSON(t, "plan.json", plan)
}

// An empty list is [] in the JSON, never null: a daemon with no rules says
// "apps": [], a recovery with no jobs "jobs": [], a plan of an app with no
// connection "peers": [], and the client returns an empty history as [].
func TestJSONEmptyLists(t *testing.T) {
	goldenJSON(t, "status-empty.json", map[string]any{
		"status":      control.Status{},
		"recovery":    control.Recovery{},
		"planned_job": control.PlannedJob{},
		"in_response": control.Response{OK: true, Status: &control.Status{}},
	})
}

// goldenJSON compares v, written as busmedic's --json options write it,
// with testdata/name.
func goldenJSON(t *testing.T, name string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden(t, name, append(got, '\n'))
}

// golden compares got with testdata/name, or with -update writes it there.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s changed; scripts and people read it (go test -update rewrites it, if the change is meant):\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}
