package control_test

import (
	"bytes"
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
