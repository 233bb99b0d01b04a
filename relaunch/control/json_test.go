package control_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"busmedic/relaunch"
	"busmedic/watcher"
)

var update = flag.Bool("update", false, "rewrite the golden JSON files in testdata")

// The JSON of Status and Recovery is also the output of "busmedic status
// --json" and "busmedic history --json", which scripts read: these golden
// files pin every field name. A change here is a change for those scripts.
func TestJSONStable(t *testing.T) {
	at := time.Date(2025, 3, 4, 12, 3, 0, 0, time.UTC)
	dunst := watcher.Peer{UniqueName: ":1.42", Names: []string{"org.freedesktop.Notifications"}, PID: 4242, UID: 1000,
		Exe: "/usr/bin/dunst", Argv: []string{"dunst", "-verbosity", "crit"}, Cwd: "/home/ada", PPID: 1, StartTime: 123456}
	relaunched := relaunch.Job{App: "dunst", Bus: "session", Action: "relaunch", Outcome: relaunch.Relaunched,
		PID: 4343, Started: at.Add(time.Second), Took: 340 * time.Millisecond}
	recovery := relaunch.Recovery{Bus: "session", OldID: "0123abcd", ID: "4567ef01", Downtime: 1200 * time.Millisecond,
		Started: at, Ended: at.Add(2 * time.Second), Jobs: []relaunch.Job{
			relaunched,
			{App: "panel", Bus: "session", Action: "signal", Outcome: relaunch.Failed, Reason: "no such process", Started: at.Add(time.Second)},
		}}
	status := relaunch.Status{
		Time: at.Add(time.Minute),
		Buses: []relaunch.BusStatus{
			{Name: "session", Address: "unix:path=/run/user/1000/bus", Up: true, ID: "4567ef01", Since: at, Peers: 12,
				Outdated: "/usr/bin/dbus-daemon was replaced"},
			{Name: "system", Address: "unix:path=/run/dbus/system_bus_socket", Since: at, Reason: "connection reset"},
		},
		Apps: []relaunch.AppStatus{
			{ID: "dunst", Name: "Dunst", Icon: "dunst", Bus: "session", Action: "relaunch", Enabled: true, Running: true,
				PIDs: []int{4343}, Last: &relaunched},
			{ID: "panel", Name: "Panel", Bus: "session", Action: "signal"},
		},
		Casualties:            []relaunch.Casualty{{ID: "casualty:1", Bus: "session", Peer: dunst, At: at}},
		LastRecovery:          &recovery,
		RulesError:            "apps.toml:3: key exe: not absolute",
		SessionRestartRefused: `the session bus (pid 42) was started by dbus-run-session, pid 41; to let busmedic restart it, run "busmedic run --manage-session-bus" in a session that does not start its own bus`,
	}
	history := []relaunch.Recovery{recovery, {Bus: "system", OldID: "89ab", ID: "cdef", Started: at.Add(-time.Hour),
		Decision: "session ending: no recovery", Jobs: []relaunch.Job{}}}

	golden(t, "status.json", status)
	golden(t, "history.json", history)
}

// golden compares v, written as busmedic's --json options write it, with
// testdata/name.
func golden(t *testing.T, name string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
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
		t.Errorf("JSON of %s changed; scripts read it (go test -update rewrites it, if the change is meant):\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}
