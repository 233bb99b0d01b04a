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
	// kept are the apps the keeper keeps on the bus, as peers (the
	// snapshot shows the keeper for each of their connections), and
	// keeper is its pid, whose own peers are busmedic's.
	kept   []watcher.Peer
	keeper int
	// keptCommand is the command name the keeper gave for each kept
	// pid, which names the job of an app kept without a rule.
	keptCommand map[int]string
	// keptGrace is how long the job of a kept app without a rule waits
	// for the keeper's replay.
	keptGrace time.Duration
	// self is busmedic's executable, which a keep rule starts its app
	// through ("busmedic keep -- COMMAND").
	self string
}

// plan makes one job per rule that matched a peer of the snapshot or a
// kept app, in rule order, then one per kept app that no rule matched, and
// returns the peers no rule matched (casualty candidates). A peer that
// descends from a matched one is its job's helper, not unmatched.
//
// A kept app is never a casualty, nor is the keeper: its connections,
// which the bus shows as the keeper's, are busmedic's own. Its job waits
// for the keeper's replay (whatever the rule's action: the app needs
// nothing), unless the app dies.
func plan(in planInput) (jobs []control.PlannedJob, unmatched []watcher.Peer) {
	byRule := map[string]*control.PlannedJob{}
	byPID := map[int]*control.PlannedJob{}
	var others []watcher.Peer
	var keptJobs []control.PlannedJob
	for _, p := range in.kept {
		r, ok := in.rules.MatchBus(appdb.Bus(in.bus), p)
		if j := byRule[r.ID]; !ok || j != nil && j.Kept {
			// One job per kept app: a second process of one rule's
			// gets a job of its own.
			keptJobs = append(keptJobs, keptJob(in, p))
			continue
		}
		byRule[r.ID] = &control.PlannedJob{App: r.ID, Bus: in.bus, Rule: r, Peers: []watcher.Peer{p}, Kept: true}
		byPID[p.PID] = byRule[r.ID]
	}
	for _, p := range in.snapshot {
		if in.ours != nil && in.ours(p) || in.keeper > 0 && p.PID == in.keeper {
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
	return append(jobs, keptJobs...), unmatched
}

// keptJob is the job of kept app p that no rule matches ("busmedic keep"
// by hand): it records the keeper's replay, and starts nothing.
func keptJob(in planInput, p watcher.Peer) control.PlannedJob {
	r := appdb.NewRule(keptID(in.keptCommand[p.PID], p.PID))
	r.Action, r.Grace = appdb.ActionKeep, in.keptGrace
	return control.PlannedJob{App: r.ID, Bus: in.bus, Rule: r, Peers: []watcher.Peer{p}, Kept: true}
}

// completeJob fills in the command, the unit and why the job would be
// skipped.
func completeJob(j *control.PlannedJob, in planInput) {
	r := j.Rule
	j.Command, j.Dir, j.Shell, j.Unit = startCommand(r, j.Peers, in.self, in.ownUnit)
	switch {
	case r.Action == appdb.ActionIgnore:
		j.Skip = "rule says ignore"
	case r.Action == appdb.ActionKeep && in.self == "" && !j.Kept:
		j.Skip = "busmedic's own executable is unknown: it cannot start the app through busmedic keep"
	case in.paused:
		j.Skip = skipPaused
	case limitReached(r, in.crashes[r.ID], in.now):
		j.Skip = limitReason(r)
	}
}

// startCommand returns what a relaunch starts for rule r's app: the
// command, its directory, whether it runs through /bin/sh, and the user
// service to start instead (see command and jobUnit). A keep rule's app is
// started as "self keep -- COMMAND", never through a unit, whose
// ExecStart busmedic could not wrap.
func startCommand(r appdb.Rule, peers []watcher.Peer, self, ownUnit string) (argv []string, dir string, shell bool, unit string) {
	argv, dir, shell = command(r, peers)
	if r.Action == appdb.ActionKeep {
		return keepCommand(self, argv), dir, shell, ""
	}
	return argv, dir, shell, jobUnit(r, peers, ownUnit)
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
