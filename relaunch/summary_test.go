package relaunch_test

import (
	"testing"

	"busmedic/relaunch"
	"busmedic/relaunch/control"
)

func TestSummary(t *testing.T) {
	job := func(o control.Outcome, reason string) control.Job { return control.Job{Outcome: o, Reason: reason} }
	for _, tc := range []struct {
		rec  control.Recovery
		want string
		ok   bool
	}{
		{control.Recovery{Bus: "session", Jobs: []control.Job{
			job(control.Relaunched, ""), job(control.Relaunched, ""), job(control.Relaunched, ""),
			job(control.Failed, "exec not found: foo")}},
			"Session bus restarted: 3 apps relaunched, 1 needs attention", true},
		{control.Recovery{Bus: "system", Jobs: []control.Job{job(control.Reconnected, "")}},
			"System bus restarted: 1 app reconnected by itself", true},
		{control.Recovery{Bus: "session", Jobs: []control.Job{job(control.Skipped, "restart limit reached: 5 in 60s"), job(control.Skipped, "paused")}},
			"Session bus restarted: 1 needs attention", true},
		{control.Recovery{Bus: "session", Jobs: []control.Job{job(control.Skipped, "paused")}},
			"Session bus restarted: nothing to do", true},
		{control.Recovery{Bus: "session", Decision: "recovery resumed: 1 app the pause had skipped", Jobs: []control.Job{job(control.Relaunched, "")}},
			"Recovery resumed on the session bus: 1 app relaunched", true},
		{control.Recovery{Bus: "session"}, "", false},
		{control.Recovery{Bus: "session", Decision: "session ending: logout: no recovery", Jobs: []control.Job{job(control.Skipped, "")}}, "", false},
	} {
		got, ok := relaunch.Summary(tc.rec)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Summary(%+v) = %q %v, want %q %v", tc.rec, got, ok, tc.want, tc.ok)
		}
	}
}
