package editor

import (
	"strings"
	"testing"
	"time"

	"busmedic/appdb"
	"busmedic/relaunch/control"
	"busmedic/watcher"
)

func TestStateText(t *testing.T) {
	tests := []struct {
		name string
		in   *control.AppStatus
		want string
	}{
		{"unknown", nil, ""},
		{"running", &control.AppStatus{Enabled: true, Running: true, PIDs: []int{1, 2}}, "running (pid 1, 2)"},
		{"down", &control.AppStatus{Enabled: true}, "not running"},
		{"disabled", &control.AppStatus{Running: true}, "disabled"},
		{"failed", &control.AppStatus{Enabled: true, Last: &control.Job{Outcome: control.Failed, Reason: "exec: not found"}},
			"not running · last: failed: exec: not found"},
		{"slow", &control.AppStatus{Enabled: true, Running: true, Last: &control.Job{Outcome: control.Relaunched, Took: 1234567 * time.Microsecond, PID: 9}},
			"running · last: relaunched in 1.2s (pid 9)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := stateText(tt.in); got != tt.want {
				t.Errorf("stateText = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPlanText(t *testing.T) {
	sig := appdb.NewRule("panel")
	sig.Action, sig.Signal = appdb.ActionSignal, "SIGHUP"
	hook := appdb.NewRule("tray")
	hook.Action, hook.Hook = appdb.ActionHook, []string{"/usr/bin/tray", "--restart"}
	tests := []struct {
		name  string
		id    string
		plans map[string][]control.PlannedJob
		want  []string
	}{
		{"not on the bus", "panel", map[string][]control.PlannedJob{"session": nil}, []string{"No process of this app"}},
		{"signal", "panel", map[string][]control.PlannedJob{"session": {{App: "panel", Rule: sig, Peers: []watcher.Peer{{PID: 5}}}}},
			[]string{"session bus restarted now", "matches pid 5", "after 2s", "send it SIGHUP"}},
		{"hook on system", "tray", map[string][]control.PlannedJob{"system": {{App: "tray", Rule: hook}}},
			[]string{"system bus", "run /usr/bin/tray --restart"}},
		{"skipped", "panel", map[string][]control.PlannedJob{"session": {{App: "panel", Rule: sig, Skip: "paused"}}},
			[]string{"would skip it: paused"}},
		{"other apps only", "panel", map[string][]control.PlannedJob{"session": {{App: "dunst"}}}, []string{"No process"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := planText(tt.id, tt.plans)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("planText lacks %q:\n%s", w, got)
				}
			}
		})
	}
}

func TestPeerMatches(t *testing.T) {
	p := watcher.Peer{PID: 1234, Exe: "/usr/bin/nm-applet", Argv: []string{"nm-applet", "--indicator"}, Names: []string{"org.freedesktop.network-manager-applet"}}
	for q, want := range map[string]bool{
		"": true, "nm": true, "NETWORK": true, "1234": true, "session": true, "indicator applet": true,
		"/usr/bin": true, "dunst": false, "nm dunst": false,
	} {
		if got := peerMatches("session", p, q); got != want {
			t.Errorf("peerMatches(%q) = %v, want %v", q, got, want)
		}
	}
}
