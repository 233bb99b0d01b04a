package busrestart_test

import (
	"testing"

	"busmedic/relaunch/busrestart"
	"busmedic/relaunch/control"
)

func TestUpdateReport(t *testing.T) {
	job := func(o control.Outcome, reason string) control.Job {
		return control.Job{App: "app", Outcome: o, Reason: reason}
	}
	for _, tc := range []struct {
		name string
		jobs []control.Job
		want string
	}{
		{"nothing to do", nil, "D-Bus updated without reboot: 0 apps recovered, 0 need attention"},
		{"all recovered", []control.Job{
			job(control.Relaunched, ""), job(control.Reconnected, ""), job(control.Signalled, ""),
			job(control.Hooked, ""), job(control.Notified, ""),
		}, "D-Bus updated without reboot: 5 apps recovered, 0 need attention"},
		{"one each", []control.Job{job(control.Relaunched, ""), job(control.Failed, "exited with 1")},
			"D-Bus updated without reboot: 1 app recovered, 1 needs attention"},
		{"limit needs attention, paused and ignored do not", []control.Job{
			job(control.Skipped, "restart limit reached: 3 in 1m"), job(control.Skipped, "paused"),
			job(control.Skipped, "rule says ignore"), job(control.Cancelled, "bus went down again"),
			job(control.Failed, "not ready"), job(control.Relaunched, ""),
		}, "D-Bus updated without reboot: 1 app recovered, 2 need attention"},
		{"still running", []control.Job{job(control.Running, ""), job(control.Pending, ""), job(control.Relaunched, "")},
			"D-Bus updated without reboot: 1 app recovered, 0 need attention, 2 still recovering"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := busrestart.UpdateReport(control.Recovery{Bus: "system", Jobs: tc.jobs}); got != tc.want {
				t.Errorf("UpdateReport = %q\nwant           %q", got, tc.want)
			}
		})
	}
}
