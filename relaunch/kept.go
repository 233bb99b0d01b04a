package relaunch

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"busmedic/appdb"
	"busmedic/relaunch/control"
	"busmedic/watcher"
)

// The keeper ("busmedic keeper") stands between kept apps and the session
// bus, and holds their connections through its restarts. The bus sees the
// keeper's pid for every kept connection, so the watcher's peers say
// nothing of the apps behind it: what the engine knows of them is what the
// keeper reports (ReportKept), through the daemon's control socket.

// keptState is what the keeper last reported of one bus. It lives in
// busState, under Engine.mu, so that a report wakes the jobs that wait on
// the bus (busState.changed).
type keptState struct {
	report control.KeptReport
	// peers are the kept apps as peers of the bus, one per app: the
	// process from /proc, the names from the report. Planning matches the
	// rules against them, since the bus shows the keeper instead.
	peers []watcher.Peer
	// replays are what the keeper replayed onto each recent instance of
	// the bus, by its id. A replay may come before the engine learns of
	// the restart, or after a recovery planned its jobs: they look here.
	replays map[string][]control.Replay
	ids     []string // the keys of replays, oldest first
}

// keptReplayIDs is how many bus instances' replays are kept: enough for a
// recovery that starts late in a storm of restarts.
const keptReplayIDs = 8

// keptWaitMin is the least a job waits for the keeper's replay of a kept
// app. A rule's grace of 0 says that the app never reconnects by itself,
// which says nothing of the keeper, whose reconnect takes milliseconds.
const keptWaitMin = time.Second

// replay returns the keeper's replay of process pid onto bus instance id.
func (k *keptState) replay(id string, pid int) (control.Replay, bool) {
	i := slices.IndexFunc(k.replays[id], func(r control.Replay) bool { return r.PID == pid })
	if i < 0 {
		return control.Replay{}, false
	}
	return k.replays[id][i], true
}

// keeper returns the keeper's pid, while it has reported.
func (k *keptState) keeper() int { return k.report.Keeper }

// ReportKept takes the keeper's report on a bus: the apps it keeps, which
// Status lists and recoveries plan for, and what it replayed after a
// restart, which ends the jobs of the kept apps with outcome kept. The
// daemon calls it for every report the keeper sends (control.OpKept),
// again in full after either of them restarted. It does not block.
func (e *Engine) ReportKept(r control.KeptReport) {
	// /proc is read before the lock: the status path never waits on a
	// file read under it.
	peers := make([]watcher.Peer, 0, len(r.Apps))
	for _, a := range r.Apps {
		peers = append(peers, keptAppPeer(a))
	}
	now := time.Now()
	e.mu.Lock()
	b := e.bus(r.Bus)
	k := &b.kept
	k.report, k.peers = r, peers
	if k.replays == nil {
		k.replays = map[string][]control.Replay{}
	}
	var late []control.Job
	for _, rp := range r.Replays {
		if rp.BusID == "" && b.up {
			// A replay that failed before the bus said its id was onto
			// the bus that is up now.
			rp.BusID = b.id
		}
		if _, seen := k.replay(rp.BusID, rp.PID); seen {
			continue // sent again, to a daemon that may have missed it
		}
		if _, ok := k.replays[rp.BusID]; !ok {
			k.ids = append(k.ids, rp.BusID)
			if len(k.ids) > keptReplayIDs {
				delete(k.replays, k.ids[0])
				k.ids = k.ids[1:]
			}
		}
		k.replays[rp.BusID] = append(k.replays[rp.BusID], rp)
		if j, ok := e.addReplayJobLocked(b, rp, now); ok {
			late = append(late, j)
		}
	}
	b.changed()
	e.mu.Unlock()
	for _, j := range late {
		e.logKeptJob(j)
	}
	e.log.Debug("keeper report", "bus", r.Bus, "keeper", r.Keeper, "up", r.Up, "apps", len(r.Apps), "replays", len(r.Replays))
	e.notifyChanged()
}

// keptAppPeer is kept app a as a peer of its bus: its process as /proc
// tells it (if it is still the same process), with the names it owns
// through the keeper.
func keptAppPeer(a control.KeptApp) watcher.Peer {
	p, err := watcher.ProcessInfo(a.PID)
	if err != nil || a.StartTime != 0 && p.StartTime != a.StartTime {
		p = watcher.Peer{PID: a.PID, UID: -1, StartTime: a.StartTime, Argv: []string{a.Command}}
	}
	p.Names = slices.Sorted(slices.Values(a.Names))
	if len(a.UniqueNames) > 0 {
		p.UniqueName = a.UniqueNames[0]
	}
	return p
}

// addReplayJobLocked records the replay of an app that no job of the
// running recovery of its bus instance waits for (an app that connected to
// the keeper while the bus was down), as an ended job of that recovery:
// one job per kept app per restart. Jobs that wait for their replay find
// it themselves. Called with e.mu held.
func (e *Engine) addReplayJobLocked(b *busState, rp control.Replay, now time.Time) (control.Job, bool) {
	r := b.rec
	if r == nil || !r.planned || r.rec.ID != rp.BusID {
		return control.Job{}, false
	}
	if slices.ContainsFunc(r.jobs, func(jr *jobRun) bool { return jr.keptPID == rp.PID }) {
		return control.Job{}, false
	}
	id := keptID(rp.Command, rp.PID)
	if slices.ContainsFunc(r.rec.Jobs, func(j control.Job) bool { return j.App == id }) {
		return control.Job{}, false
	}
	res := keptResult(rp, b.lostTo)
	j := control.Job{App: id, Bus: b.name, Action: string(appdb.ActionKeep), Outcome: res.outcome, Reason: res.reason,
		PID: rp.PID, Started: now, Took: rp.Took}
	r.rec.Jobs = append(r.rec.Jobs, j)
	e.lastJob[id] = j
	return j, true
}

func (e *Engine) logKeptJob(j control.Job) {
	level, event := jobEvent(j.Outcome)
	e.log.Log(context.Background(), level, "job ended", event, "app", j.App, "bus", j.Bus, "outcome", j.Outcome,
		"reason", j.Reason, "pid", j.PID, "took", j.Took)
}

// lostTo returns the pid of the process that owns name on the bus now, or
// 0. Called with e.mu held.
func (b *busState) lostTo(name string) int {
	if p, ok := b.peers[b.owners[name]]; ok {
		return p.PID
	}
	return 0
}

// keptID names the job of an app that the keeper keeps without a rule
// ("busmedic keep" by hand) as "kept:COMMAND:PID".
func keptID(command string, pid int) string {
	prog := command[strings.LastIndexByte(command, '/')+1:]
	if prog == "" {
		prog = "pid"
	}
	return fmt.Sprintf("kept:%s:%d", fileSafe(prog), pid)
}

// keptResult is how the job of an app ends that the keeper replayed rp
// for: kept, or failed with the replay's error. lostTo tells who took a
// name the app lost (0: unknown).
func keptResult(rp control.Replay, lostTo func(name string) int) result {
	if rp.Error != "" {
		return result{outcome: control.Failed, reason: "kept, but the replay failed: " + rp.Error, pid: rp.PID, action: appdb.ActionKeep}
	}
	return result{outcome: control.Kept, reason: keptReason(rp, lostTo), pid: rp.PID, action: appdb.ActionKeep}
}

// keptReason says what the keeper did for an app, for the history: "kept:
// reconnected in 4 ms, 3 matches and 1 name replayed", or, when a replayed
// name went to someone else, "kept, but lost org.x.Y to pid 1234;
// reconnected in ...".
func keptReason(rp control.Replay, lostTo func(name string) int) string {
	did := "reconnected in " + control.Millis(rp.Took) + ", " + replayedWhat(rp)
	if len(rp.Lost) == 0 {
		return "kept: " + did
	}
	lost := make([]string, 0, len(rp.Lost))
	for _, n := range rp.Lost {
		if pid := lostTo(n); pid > 0 {
			lost = append(lost, fmt.Sprintf("%s to pid %d", n, pid))
		} else {
			lost = append(lost, n+" to another process")
		}
	}
	return "kept, but lost " + strings.Join(lost, ", ") + "; " + did
}

// replayedWhat counts what was replayed: "3 matches and 1 name replayed",
// "nothing to replay".
func replayedWhat(rp control.Replay) string {
	var parts []string
	if rp.Matches > 0 {
		parts = append(parts, control.Count(rp.Matches, "match", "matches"))
	}
	if n := len(rp.Names) + len(rp.Lost); n > 0 {
		parts = append(parts, control.Count(n, "name", "names"))
	}
	if rp.Monitor {
		parts = append(parts, "the monitor")
	}
	switch len(parts) {
	case 0:
		return "nothing to replay"
	case 1:
		return parts[0] + " replayed"
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1] + " replayed"
}

// awaitReplay waits for the keeper's replay of the job's kept process
// onto the job's bus instance: for the rule's grace (at least
// keptWaitMin), rather than racing the keeper, whose report may come
// before or after the watcher's. ok is false when the process exited
// first: it was not kept through this restart after all, and the job goes
// on as for an app that died.
func (e *Engine) awaitReplay(ctx context.Context, bus string, jr *jobRun) (res result, ok bool) {
	wait := max(jr.plan.Rule.Grace, keptWaitMin)
	gctx, stop := context.WithCancel(ctx)
	defer stop()
	exited := allExited(gctx, []watcher.Peer{{PID: jr.keptPID, StartTime: jr.keptStart, UID: -1}})
	var rp control.Replay
	got := e.waitFor(ctx, bus, time.Now().Add(wait), exited, func(b *busState) bool {
		var found bool
		rp, found = b.kept.replay(jr.busID, jr.keptPID)
		if found {
			res = keptResult(rp, b.lostTo)
		}
		return found
	})
	switch {
	case got:
		return res, true
	case ctx.Err() != nil:
		return result{outcome: control.Cancelled, reason: context.Cause(ctx).Error()}, true
	case isClosed(exited):
		return result{}, false
	}
	return result{outcome: control.Failed, reason: fmt.Sprintf("kept, but the keeper reported no replay within %s", shortDuration(wait)),
		pid: jr.keptPID, action: appdb.ActionKeep}, true
}

// keepCommand wraps argv in "busmedic keep --", so that the app it starts
// is kept: self is busmedic's executable.
func keepCommand(self string, argv []string) []string {
	if len(argv) == 0 {
		return nil
	}
	return append([]string{self, "keep", "--"}, argv...)
}
