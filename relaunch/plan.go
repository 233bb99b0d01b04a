package relaunch

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"busmedic/appdb"
	"busmedic/relaunch/control"
	"busmedic/watcher"
)

// planInput is everything a plan depends on, so that planning is a plain
// function.
type planInput struct {
	bus      string
	rules    *appdb.Set
	snapshot []watcher.Peer
	paused   bool
	now      time.Time
	// crashes are the recent crash times per rule id, for the restart limit.
	crashes map[string][]time.Time
	// ours tells busmedic's own processes, which are never planned for;
	// nil for none.
	ours func(watcher.Peer) bool
	// parent returns the parent pid of a live process not in the
	// snapshot, or 0; nil reads /proc.
	parent func(pid int) int
	// ownUnit is the user service busmedic runs in, never an app's.
	ownUnit string
}

// plan makes one job per rule that matched a peer of the snapshot, in rule
// order, and returns the peers no rule matched (casualty candidates). A peer
// that descends from a matched one is its job's helper, not unmatched.
func plan(in planInput) (jobs []control.PlannedJob, unmatched []watcher.Peer) {
	byRule := map[string]*control.PlannedJob{}
	byPID := map[int]*control.PlannedJob{}
	var others []watcher.Peer
	for _, p := range in.snapshot {
		if in.ours != nil && in.ours(p) {
			continue
		}
		r, ok := in.rules.MatchBus(appdb.Bus(in.bus), p)
		if !ok {
			others = append(others, p)
			continue
		}
		j := byRule[r.ID]
		if j == nil {
			j = &control.PlannedJob{App: r.ID, Bus: in.bus, Rule: r}
			byRule[r.ID] = j
		}
		j.Peers = append(j.Peers, p)
		if p.PID > 0 {
			byPID[p.PID] = j
		}
	}
	ancestry := newAncestry(in.snapshot, in.parent)
	for _, p := range others {
		if j := ancestry.owner(p, byPID); j != nil {
			j.Helpers = append(j.Helpers, p)
			continue
		}
		unmatched = append(unmatched, p)
	}
	if in.rules != nil {
		for _, r := range in.rules.Rules() {
			if j := byRule[r.ID]; j != nil {
				completeJob(j, in)
				jobs = append(jobs, *j)
			}
		}
	}
	return jobs, unmatched
}

// completeJob fills in the command, the unit and why the job would be
// skipped.
func completeJob(j *control.PlannedJob, in planInput) {
	r := j.Rule
	j.Command, j.Dir, j.Shell = command(r, j.Peers)
	j.Unit = jobUnit(r, j.Peers, in.ownUnit)
	switch {
	case r.Action == appdb.ActionIgnore:
		j.Skip = "rule says ignore"
	case in.paused:
		j.Skip = "paused"
	case limitReached(r, in.crashes[r.ID], in.now):
		j.Skip = limitReason(r)
	}
}

// command returns what starts the app: the rule's exec (through /bin/sh -c
// when shell is set), else the argv of the first process that had one, in
// the directory it had. An argv[0] like "./prog" is replaced by the resolved
// executable, since the directory it was relative to may not be its cwd.
func command(r appdb.Rule, peers []watcher.Peer) (argv []string, dir string, shell bool) {
	dir = r.Workdir
	if len(r.Exec) > 0 {
		if r.Shell {
			return []string{"/bin/sh", "-c", strings.Join(r.Exec, " ")}, dir, true
		}
		return slices.Clone(r.Exec), dir, false
	}
	for _, p := range peers {
		if len(p.Argv) == 0 || p.Argv[0] == "" {
			continue
		}
		argv = slices.Clone(p.Argv)
		exe := strings.TrimSuffix(p.Exe, " (deleted)")
		if strings.Contains(argv[0], "/") && !filepath.IsAbs(argv[0]) && exe != "" {
			argv[0] = exe
		}
		if dir == "" {
			dir = p.Cwd
		}
		return argv, dir, false
	}
	return nil, dir, false
}

// limitReached reports whether the rule's app, started by busmedic,
// crashed max_restarts times within restart_window before now. Relaunches
// after bus restarts do not count: an app that fell with its bus is the
// bus's victim (the storm guard of the engine looks after a bus that keeps
// restarting).
func limitReached(r appdb.Rule, crashes []time.Time, now time.Time) bool {
	if r.MaxRestarts <= 0 {
		return false
	}
	n := 0
	for _, t := range crashes {
		if now.Sub(t) < r.RestartWindow {
			n++
		}
	}
	return n >= r.MaxRestarts
}

func limitReason(r appdb.Rule) string {
	return fmt.Sprintf("restart limit reached: crashed %s in %s", times(r.MaxRestarts), shortDuration(r.RestartWindow))
}

func times(n int) string {
	switch n {
	case 1:
		return "once"
	case 2:
		return "twice"
	}
	return strconv.Itoa(n) + " times"
}

// shortDuration writes whole seconds as "60s" rather than "1m0s", the way
// the rules file is usually written.
func shortDuration(d time.Duration) string {
	if d%time.Second == 0 && d > 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	return d.String()
}
