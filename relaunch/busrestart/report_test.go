package busrestart_test

import (
	"testing"

	"busmedic/relaunch"
	"busmedic/relaunch/busrestart"
)

func TestUpdateReport(t *testing.T) {
	job := func(o relaunch.Outcome, reason string) relaunch.Job {
		return relaunch.Job{App: "app", Outcome: o, Reason: reason}
	}
	for _, tc := range []struct {
		name string
		jobs []relaunch.Job
		want string
	}{
		{"nothing to do", nil, "D-Bus updated without reboot: 0 apps recovered, 0 need attention"},
		{"all recovered", []relaunch.Job{
			job(relaunch.Relaunched, ""), job(relaunch.Reconnected, ""), job(relaunch.Signalled, ""),
			job(relaunch.Hooked, ""), job(relaunch.Notified, ""),
		}, "D-Bus updated without reboot: 5 apps recovered, 0 need attention"},
		{"one each", []relaunch.Job{job(relaunch.Relaunched, ""), job(relaunch.Failed, "exited with 1")},
			"D-Bus updated without reboot: 1 app recovered, 1 needs attention"},
		{"limit needs attention, paused and ignored do not", []relaunch.Job{
			job(relaunch.Skipped, "restart limit reached: 3 in 1m"), job(relaunch.Skipped, "paused"),
			job(relaunch.Skipped, "rule says ignore"), job(relaunch.Cancelled, "bus went down again"),
			job(relaunch.Failed, "not ready"), job(relaunch.Relaunched, ""),
		}, "D-Bus updated without reboot: 1 app recovered, 2 need attention"},
		{"still running", []relaunch.Job{job(relaunch.Running, ""), job(relaunch.Pending, ""), job(relaunch.Relaunched, "")},
			"D-Bus updated without reboot: 1 app recovered, 0 need attention, 2 still recovering"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := busrestart.UpdateReport(relaunch.Recovery{Bus: "system", Jobs: tc.jobs}); got != tc.want {
				t.Errorf("UpdateReport = %q\nwant           %q", got, tc.want)
			}
		})
	}
}
