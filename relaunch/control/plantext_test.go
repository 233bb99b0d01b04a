package control_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"busmedic/appdb"
	"busmedic/relaunch/control"
	"busmedic/watcher"
)

// The text of "busmedic plan" (and the lines of the rules editor's plan
// view): one golden file, with a job of every kind.
func TestWritePlanText(t *testing.T) {
	relaunch := appdb.NewRule("dunst")
	unit := appdb.NewRule("panel")
	signal := appdb.NewRule("tray")
	signal.Action, signal.Signal = appdb.ActionSignal, "SIGHUP"
	hook := appdb.NewRule("applet")
	hook.Action, hook.Hook, hook.After = appdb.ActionHook, []string{"/usr/bin/applet", "--restart"}, []string{"org.kde.StatusNotifierWatcher"}
	notify := appdb.NewRule("mail")
	notify.Action = appdb.ActionNotify
	var b bytes.Buffer
	if err := control.WritePlanText(&b, "session", []control.PlannedJob{
		{App: "dunst", Bus: "session", Rule: relaunch, Peers: []watcher.Peer{{PID: 4242}, {PID: 4243}},
			Command: []string{"/usr/bin/dunst", "-verbosity", "crit"}, Dir: "/home/ada"},
		{App: "panel", Bus: "session", Rule: unit, Peers: []watcher.Peer{{PID: 77}}, Command: []string{"xfce4-panel"}, Unit: "xfce4-panel.service"},
		{App: "tray", Bus: "session", Rule: signal, Peers: []watcher.Peer{{PID: 78}}},
		{App: "applet", Bus: "session", Rule: hook},
		{App: "mail", Bus: "session", Rule: notify, Peers: []watcher.Peer{{PID: 79}}, Skip: "restart limit reached (5 in 1m0s)"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := control.WritePlanText(&b, "system", nil); err != nil {
		t.Fatal(err)
	}
	golden(t, "plan.txt", b.Bytes())
}

// TestAppPlan: what "busmedic plan ID" and "busmedic relaunch" find and
// say of one app: its buses, where it runs, its part of a dry run.
func TestAppPlan(t *testing.T) {
	st := control.Status{
		Apps: []control.AppStatus{
			{ID: "dunst", Bus: "session", Running: true, PIDs: []int{4242, 4243}},
			{ID: "panel", Bus: "both", Running: true},
			{ID: "nm", Bus: "system"},
		},
		Casualties: []control.Casualty{{ID: "casualty:1", Bus: "session"}},
	}
	for _, tc := range []struct {
		id    string
		buses []string
		where string
	}{
		{"dunst", []string{"session"}, "dunst is running (pid 4242, 4243) on the session bus"},
		{"panel", []string{"session", "system"}, "panel is running on the session bus"},
		{"nm", []string{"system"}, "nm is running on the system bus"},
	} {
		a, ok := st.App(tc.id)
		if !ok || !slices.Equal(a.Buses(), tc.buses) || a.Where() != tc.where {
			t.Errorf("app %s: %v, buses %q, %q; want %q, %q", tc.id, ok, a.Buses(), a.Where(), tc.buses, tc.where)
		}
	}
	if _, ok := st.App("casualty:1"); ok {
		t.Error("a casualty is no app")
	}
	if c, ok := st.Casualty("casualty:1"); !ok || c.Bus != "session" {
		t.Errorf("casualty: %+v, %v", c, ok)
	}
	jobs := []control.PlannedJob{
		{App: "dunst", Bus: "session", Rule: appdb.NewRule("dunst"), Command: []string{"dunst"}},
		{App: "panel", Bus: "session", Rule: appdb.NewRule("panel")},
	}
	var b bytes.Buffer
	if err := control.WriteAppPlanText(&b, "session", "dunst", jobs); err != nil {
		t.Fatal(err)
	}
	if err := control.WriteAppPlanText(&b, "system", "dunst", nil); err != nil {
		t.Fatal(err)
	}
	want := "If the session bus restarted now:\n  dunst\n"
	if got := b.String(); !strings.HasPrefix(got, want) || strings.Contains(got, "panel") ||
		!strings.HasSuffix(got, "command: dunst\nIf the system bus restarted now:\n  dunst is not on it: busmedic would not touch it\n") {
		t.Errorf("plan of dunst:\n%s", got)
	}
}
