package relaunch_test

import (
	"testing"

	"busmedic/relaunch"
)

func TestSummary(t *testing.T) {
	job := func(o relaunch.Outcome, reason string) relaunch.Job { return relaunch.Job{Outcome: o, Reason: reason} }
	for _, tc := range []struct {
		rec  relaunch.Recovery
		want string
		ok   bool
	}{
		{relaunch.Recovery{Bus: "session", Jobs: []relaunch.Job{
			job(relaunch.Relaunched, ""), job(relaunch.Relaunched, ""), job(relaunch.Relaunched, ""),
			job(relaunch.Failed, "exec not found: foo")}},
			"Session bus restarted: 3 apps relaunched, 1 needs attention", true},
		{relaunch.Recovery{Bus: "system", Jobs: []relaunch.Job{job(relaunch.Reconnected, "")}},
			"System bus restarted: 1 app reconnected by itself", true},
		{relaunch.Recovery{Bus: "session", Jobs: []relaunch.Job{job(relaunch.Skipped, "restart limit reached: 5 in 60s"), job(relaunch.Skipped, "paused")}},
			"Session bus restarted: 1 needs attention", true},
		{relaunch.Recovery{Bus: "session", Jobs: []relaunch.Job{job(relaunch.Skipped, "paused")}},
			"Session bus restarted: nothing to do", true},
		{relaunch.Recovery{Bus: "session"}, "", false},
		{relaunch.Recovery{Bus: "session", Decision: "session ending: logout: no recovery", Jobs: []relaunch.Job{job(relaunch.Skipped, "")}}, "", false},
	} {
		got, ok := relaunch.Summary(tc.rec)
		if got != tc.want || ok != tc.ok {
			t.Errorf("Summary(%+v) = %q %v, want %q %v", tc.rec, got, ok, tc.want, tc.ok)
		}
	}
}
