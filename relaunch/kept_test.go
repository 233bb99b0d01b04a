package relaunch

import (
	"fmt"
	"os/exec"
	"slices"
	"testing"
	"time"

	"busmedic/appdb"
	"busmedic/relaunch/control"
	"busmedic/watcher"
)

func TestKeptReason(t *testing.T) {
	owners := map[string]int{"org.x.Y": 4321}
	lostTo := func(n string) int { return owners[n] }
	base := control.Replay{PID: 1234, Command: "dunst", Took: 4 * time.Millisecond}
	tests := []struct {
		name string
		rp   func(r *control.Replay)
		want string
	}{
		{"matches and a name", func(r *control.Replay) { r.Matches, r.Names = 3, []string{"org.x.A"} },
			"kept: reconnected in 4 ms, 3 matches and 1 name replayed"},
		{"names only", func(r *control.Replay) { r.Names = []string{"org.x.A", "org.x.B"} },
			"kept: reconnected in 4 ms, 2 names replayed"},
		{"nothing", func(*control.Replay) {}, "kept: reconnected in 4 ms, nothing to replay"},
		{"monitor", func(r *control.Replay) { r.Matches, r.Monitor = 1, true },
			"kept: reconnected in 4 ms, 1 match and the monitor replayed"},
		{"lost to a known process", func(r *control.Replay) { r.Matches, r.Lost = 2, []string{"org.x.Y"} },
			"kept, but lost org.x.Y to pid 4321; reconnected in 4 ms, 2 matches and 1 name replayed"},
		{"lost to someone unknown", func(r *control.Replay) { r.Lost = []string{"org.x.Y", "org.x.Z"} },
			"kept, but lost org.x.Y to pid 4321, org.x.Z to another process; reconnected in 4 ms, 2 names replayed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rp := base
			tt.rp(&rp)
			if got := keptReason(rp, lostTo); got != tt.want {
				t.Errorf("keptReason = %q\nwant %q", got, tt.want)
			}
			res := keptResult(rp, lostTo)
			if res.outcome != control.Kept || res.pid != 1234 || res.action != appdb.ActionKeep {
				t.Errorf("keptResult = %+v, want kept, pid 1234, action keep", res)
			}
		})
	}
	t.Run("failed replay", func(t *testing.T) {
		rp := base
		rp.Error = "the bus refused Hello"
		res := keptResult(rp, lostTo)
		if res.outcome != control.Failed || res.reason != "kept, but the replay failed: the bus refused Hello" {
			t.Errorf("keptResult = %+v", res)
		}
	})
}

func TestKeptID(t *testing.T) {
	for in, want := range map[string]string{"dunst": "kept:dunst:7", "/usr/bin/dunst": "kept:dunst:7", "my app": "kept:my_app:7", "": "kept:pid:7"} {
		if got := keptID(in, 7); got != want {
			t.Errorf("keptID(%q) = %q, want %q", in, got, want)
		}
	}
}

// The bus shows the keeper for every kept connection: planning looks at
// the kept apps instead. A kept app gets one job, its rule's (whatever
// the action) or one of its own; the keeper is never a casualty; an app of
// a keep rule that is not kept is started through "busmedic keep".
func TestPlanKept(t *testing.T) {
	set := parseRules(t, `
[[app]]
id = "dunst"
names = ["org.freedesktop.Notifications"]
action = "keep"

[[app]]
id = "irc"
argv0 = "irssi"
action = "keep"
exec = ["/usr/bin/irssi", "--home", "/tmp/irc"]

[[app]]
id = "panel"
argv0 = "xfce4-panel"
`)
	uid := currentUID()
	const keeper = 500
	// What the bus shows: the keeper's connections, one with dunst's name.
	keeperPeers := []watcher.Peer{
		{UniqueName: ":1.1", Names: []string{"org.freedesktop.Notifications"}, PID: keeper, UID: uid, Argv: []string{"busmedic", "keeper"}},
		{UniqueName: ":1.2", PID: keeper, UID: uid, Argv: []string{"busmedic", "keeper"}},
	}
	dunst := watcher.Peer{UniqueName: ":1.9", Names: []string{"org.freedesktop.Notifications"}, PID: 10, UID: uid, Argv: []string{"dunst"}}
	byHand := watcher.Peer{UniqueName: ":1.8", PID: 11, UID: uid, Argv: []string{"/usr/bin/foot"}}
	panel := watcher.Peer{UniqueName: ":1.3", PID: 12, UID: uid, Argv: []string{"xfce4-panel"}}
	irssi := watcher.Peer{UniqueName: ":1.4", PID: 13, UID: uid, Argv: []string{"irssi", "-c", "libera"}, Cwd: "/home/u"}

	jobs, unmatched := plan(planInput{bus: "session", rules: set, snapshot: append(slices.Clone(keeperPeers), panel, irssi),
		kept: []watcher.Peer{dunst, byHand}, keptCommand: map[int]string{11: "foot"}, keeper: keeper, self: "/usr/bin/busmedic", keptGrace: 2 * time.Second, now: time.Now()})
	if len(unmatched) != 0 {
		t.Errorf("unmatched = %v, want none: the keeper is busmedic's own", unmatched)
	}
	var got []string
	for _, j := range jobs {
		got = append(got, j.App)
	}
	if want := []string{"dunst", "irc", "panel", "kept:foot:11"}; !slices.Equal(got, want) {
		t.Fatalf("jobs = %v, want %v", got, want)
	}
	d, irc, p, hand := jobs[0], jobs[1], jobs[2], jobs[3]
	if !d.Kept || len(d.Peers) != 1 || d.Peers[0].PID != 10 {
		t.Errorf("dunst's job = %+v, want kept, with dunst's own process", d)
	}
	if irc.Kept || !slices.Equal(irc.Command, []string{"/usr/bin/busmedic", "keep", "--", "/usr/bin/irssi", "--home", "/tmp/irc"}) || irc.Unit != "" {
		t.Errorf("irc's job = %+v, want its exec through busmedic keep, no unit", irc)
	}
	if p.Kept || !slices.Equal(p.Command, []string{"xfce4-panel"}) {
		t.Errorf("panel's job = %+v, want its own command", p)
	}
	if !hand.Kept || hand.Rule.Action != appdb.ActionKeep || hand.Rule.Grace != 2*time.Second || len(hand.Command) != 0 {
		t.Errorf("the job of the app kept by hand = %+v", hand)
	}

	// Without its own executable busmedic cannot start an app to keep.
	jobs, _ = plan(planInput{bus: "session", rules: set, snapshot: []watcher.Peer{irssi}, now: time.Now()})
	if len(jobs) != 1 || jobs[0].Skip == "" {
		t.Errorf("jobs without self = %+v, want irc skipped", jobs)
	}
}

// startIdle starts a process that idles until the test ends.
func startIdle(t *testing.T, argv ...string) (pid int, start uint64) {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	start, _, err := procStat(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid, start
}

// With the keeper's reports the engine records one job per kept app per
// restart, in the recovery of that restart: its rule's job, which waits
// for the keeper's replay (whatever comes first), or one of its own
// ("kept:COMMAND:PID"), also for an app that came to the keeper while the
// bus was down; and lists the kept apps in Status, the rule's app running.
func TestKeptRecovery(t *testing.T) {
	h := newHarness(t, `
[[app]]
id = "napper"
argv0 = "sleep"
action = "keep"
grace = "20s"
`)
	napper, napStart := startIdle(t, "sleep", "600")
	byHand, handStart := startIdle(t, "tail", "-f", "/dev/null")
	late, lateStart := startIdle(t, "tail", "-f", "/dev/null")
	// The bus sees the keeper for each kept connection: a stand-in, which
	// exits with its bus, owns napper's name.
	keeper := h.bus.StartApp("-name", "org.example.Napper", "-mode", "exit")
	h.waitOwner("org.example.Napper", 0)
	report := control.KeptReport{Bus: "session", Keeper: keeper.PID(), Up: true, Apps: []control.KeptApp{
		{PID: napper, StartTime: napStart, Command: "sleep", Bus: "session", Names: []string{"org.example.Napper"}},
		{PID: byHand, StartTime: handStart, Command: "tail", Bus: "session"},
	}}
	h.eng.ReportKept(report)
	h.until("napper running", func() bool {
		st := h.eng.Status()
		return len(st.Kept) == 2 && len(st.Apps) == 1 && slices.Equal(st.Apps[0].PIDs, []int{napper})
	})
	plan := h.eng.Plan("session", nil)
	if len(plan) != 2 || plan[0].App != "napper" || !plan[0].Kept || plan[1].App != fmt.Sprintf("kept:tail:%d", byHand) {
		t.Fatalf("plan = %+v, want napper's job and the hand-kept app's, both kept", plan)
	}

	h.bus.Kill()
	h.bus.Start()
	id := h.waitUp()
	// The jobs wait for the replays (napper for its grace).
	h.until("the recovery planned", func() bool {
		r := h.eng.Status().LastRecovery
		return r != nil && r.ID == id && len(r.Jobs) == 2 && r.Jobs[0].Outcome == control.Running
	})
	// The keeper's replays: napper lost a name, and a third app, which
	// connected while the bus was down, was replayed too: a job of its
	// own, added to the running recovery.
	report.Apps = append(report.Apps, control.KeptApp{PID: late, StartTime: lateStart, Command: "tail", Bus: "session"})
	report.Replays = []control.Replay{
		{PID: napper, Command: "sleep", Bus: "session", BusID: id, Took: 4 * time.Millisecond, Matches: 3, Lost: []string{"org.example.Napper"}},
		{PID: byHand, Command: "tail", Bus: "session", BusID: id, Took: 5 * time.Millisecond, Matches: 1},
		{PID: late, Command: "tail", Bus: "session", BusID: id, Took: 2 * time.Millisecond},
	}
	h.eng.ReportKept(report)
	h.eng.ReportKept(report) // sent again, as to a daemon that may have missed it
	rec := h.waitRecovery(id)
	want := map[string]string{
		"napper":                            "kept, but lost org.example.Napper to another process; reconnected in 4 ms, 3 matches and 1 name replayed",
		fmt.Sprintf("kept:tail:%d", byHand): "kept: reconnected in 5 ms, 1 match replayed",
		fmt.Sprintf("kept:tail:%d", late):   "kept: reconnected in 2 ms, nothing to replay",
	}
	if len(rec.Jobs) != len(want) {
		t.Fatalf("recovery jobs = %+v, want one per kept app", rec.Jobs)
	}
	for app, reason := range want {
		j := jobOf(t, rec, app)
		if j.Outcome != control.Kept || j.Reason != reason || j.Action != "keep" || j.PID == 0 {
			t.Errorf("%s: %+v, want kept, action keep, reason %q", app, j, reason)
		}
	}
	if hist := h.history(); len(hist) != 1 || len(hist[0].Jobs) != 3 {
		t.Errorf("history = %+v, want the recovery with its 3 kept jobs", hist)
	}
	h.until("the look for casualties", func() bool { return h.eng.casualtyChecks.Load() > 0 })
	if st := h.eng.Status(); len(st.Casualties) != 0 {
		t.Errorf("casualties = %+v, want none: the keeper is busmedic's own", st.Casualties)
	}
}
