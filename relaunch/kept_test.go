package relaunch

import (
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
		kept: []watcher.Peer{dunst, byHand}, keeper: keeper, self: "/usr/bin/busmedic", keptGrace: 2 * time.Second, now: time.Now()})
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
