package relaunch

import (
	"slices"
	"testing"
	"time"

	"busmedic/appdb"
	"busmedic/watcher"
)

func TestPlan(t *testing.T) {
	set := parseRules(t, `
[[app]]
id = "dunst"
names = ["org.freedesktop.Notifications"]
exec = ["/usr/bin/dunst"]

[[app]]
id = "panel"
exe = "/usr/bin/xfce4-panel"
max_restarts = 2
restart_window = "60s"

[[app]]
id = "quiet"
argv0 = "quiet-app"
action = "ignore"

[[app]]
id = "shelly"
exe = "/usr/bin/shelly"
exec = ["shelly --flag >/dev/null"]
shell = true
`)
	uid := currentUID()
	dunst := watcher.Peer{UniqueName: ":1.1", Names: []string{"org.freedesktop.Notifications"}, PID: 10, UID: uid, Argv: []string{"dunst"}}
	panel := watcher.Peer{UniqueName: ":1.2", PID: 11, UID: uid, Exe: "/usr/bin/xfce4-panel", Argv: []string{"./xfce4-panel", "--x"}, Cwd: "/home/u"}
	quiet := watcher.Peer{UniqueName: ":1.3", PID: 12, UID: uid, Argv: []string{"/opt/quiet-app"}}
	stranger := watcher.Peer{UniqueName: ":1.4", PID: 13, UID: uid, Argv: []string{"/usr/bin/other"}}
	shelly := watcher.Peer{UniqueName: ":1.5", PID: 14, UID: uid, Exe: "/usr/bin/shelly"}
	now := time.Now()
	for _, tc := range []struct {
		name      string
		in        planInput
		want      []string // app:skip
		unmatched int
	}{
		{"one job per matched rule, rule order",
			planInput{snapshot: []watcher.Peer{panel, dunst, stranger}},
			[]string{"dunst:", "panel:"}, 1},
		{"ignore is planned as skipped",
			planInput{snapshot: []watcher.Peer{quiet}},
			[]string{"quiet:rule says ignore"}, 0},
		{"paused",
			planInput{snapshot: []watcher.Peer{dunst}, paused: true},
			[]string{"dunst:paused"}, 0},
		{"restart limit",
			planInput{snapshot: []watcher.Peer{panel}, crashes: map[string][]time.Time{"panel": {now.Add(-time.Second), now.Add(-2 * time.Second)}}},
			[]string{"panel:restart limit reached: crashed twice in 60s"}, 0},
		{"old crashes do not count",
			planInput{snapshot: []watcher.Peer{panel}, crashes: map[string][]time.Time{"panel": {now.Add(-time.Hour), now.Add(-2 * time.Second)}}},
			[]string{"panel:"}, 0},
		{"empty snapshot", planInput{}, nil, 0},
		{"busmedic's own processes are neither apps nor casualties",
			planInput{snapshot: []watcher.Peer{dunst, stranger}, ours: func(p watcher.Peer) bool { return p.PID == stranger.PID }},
			[]string{"dunst:"}, 0},
		{"shell rule", planInput{snapshot: []watcher.Peer{shelly}}, []string{"shelly:"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.bus, tc.in.rules, tc.in.now = "session", set, now
			jobs, unmatched := plan(tc.in)
			var got []string
			for _, j := range jobs {
				got = append(got, j.App+":"+j.Skip)
			}
			if !slices.Equal(got, tc.want) || len(unmatched) != tc.unmatched {
				t.Errorf("plan = %q, %d unmatched; want %q, %d", got, len(unmatched), tc.want, tc.unmatched)
			}
		})
	}
	t.Run("commands", func(t *testing.T) {
		jobs, _ := plan(planInput{bus: "session", rules: set, now: now, snapshot: []watcher.Peer{dunst, panel, shelly}})
		want := map[string][]string{
			"dunst":  {"/usr/bin/dunst"},
			"panel":  {"/usr/bin/xfce4-panel", "--x"}, // ./ replaced by the exe
			"shelly": {"/bin/sh", "-c", "shelly --flag >/dev/null"},
		}
		for _, j := range jobs {
			if !slices.Equal(j.Command, want[j.App]) {
				t.Errorf("%s: command %q, want %q", j.App, j.Command, want[j.App])
			}
		}
		if jobs[1].Dir != "/home/u" {
			t.Errorf("panel dir %q, want the recorded cwd", jobs[1].Dir)
		}
	})
	t.Run("helpers", func(t *testing.T) {
		// The panel's plugin wrapper, started through a shell that is on
		// no bus, belongs to the panel; a program the panel's parent
		// started does not.
		plugin := watcher.Peer{UniqueName: ":1.6", PID: 21, PPID: 20, UID: uid, Argv: []string{"wrapper-2.0", "libsystray.so"}}
		sibling := watcher.Peer{UniqueName: ":1.7", PID: 22, PPID: 1, UID: uid, Argv: []string{"/usr/bin/other"}}
		panel := panel
		panel.PPID = 1
		parents := map[int]int{20: panel.PID}
		jobs, unmatched := plan(planInput{bus: "session", rules: set, now: now, snapshot: []watcher.Peer{panel, plugin, sibling},
			parent: func(pid int) int { return parents[pid] }})
		if len(jobs) != 1 || len(jobs[0].Helpers) != 1 || jobs[0].Helpers[0].PID != plugin.PID {
			t.Errorf("jobs %+v, want the panel with its plugin as a helper", jobs)
		}
		if len(unmatched) != 1 || unmatched[0].PID != sibling.PID {
			t.Errorf("unmatched %+v, want only the sibling", unmatched)
		}
	})
	t.Run("system bus rules only", func(t *testing.T) {
		jobs, unmatched := plan(planInput{bus: string(appdb.BusSystem), rules: set, now: now, snapshot: []watcher.Peer{dunst}})
		if len(jobs) != 0 || len(unmatched) != 1 {
			t.Errorf("session rule planned for the system bus: %+v", jobs)
		}
	})
}
