package relaunch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"busmedic/appdb"
	"busmedic/journallog"
	"busmedic/relaunch/control"
	"busmedic/watcher"
)

// recovery is one Recovery in progress. rec is guarded by Engine.mu.
type recovery struct {
	rec control.Recovery
	// settle, when set, is how long the bus must have stayed up before a
	// job acts: the bus is restarting in a storm.
	settle time.Duration
	// wentDown is when the bus went down: an app's process started since
	// is a new one.
	wentDown time.Time
	jobs     []*jobRun
	// planned is set once jobs and rec.Jobs are the plan's: a replay of
	// the keeper that no job waits for is then added as a job of its own.
	planned bool
	cancel  context.CancelCauseFunc
	done    chan struct{}
}

func (r *recovery) snapshot() control.Recovery {
	c := r.rec
	c.Jobs = slices.Clone(r.rec.Jobs)
	return c
}

// jobRun is one job of a recovery.
type jobRun struct {
	idx  int
	plan control.PlannedJob
	// busID is the bus instance the job recovers onto.
	busID string
	// settle is the recovery's storm settle time (recovery.settle).
	settle time.Duration
	// since is the moment a process of the app must have started after
	// to count as new rather than left over, and sinceWhat says, for
	// people, what happened then: the bus went down, or the user asked
	// for the relaunch.
	since     time.Time
	sinceWhat string
	// started is the process this job started, once it has; guarded by
	// Engine.mu. A job cancelled by a new restart hands it to the next plan.
	started *child
	// keptPID and keptStart are the app's process the keeper kept when
	// the job was planned (PlannedJob.Kept), or 0: the job waits for the
	// keeper's replay of it.
	keptPID   int
	keptStart uint64
	// graceOver is set for a job that recovery resumed (resumeLocked):
	// its app had its grace in the recovery that the pause skipped it
	// in, and is only looked at once more before the action.
	graceOver bool
}

// skipPaused is the reason of a job skipped because recovery was paused;
// Resume recovers the apps of such jobs.
const skipPaused = "paused"

// resumedDecision begins the Decision of a recovery started by Resume.
const resumedDecision = "recovery resumed"

// startRecoveryLocked starts the recovery of bus b after ev (a Restarted).
// Called with e.mu held; the planning happens in a goroutine, once the
// previous recovery of the bus (cancelled when the bus went down) has
// finished, so that the processes its jobs started are known.
func (e *Engine) startRecoveryLocked(ctx context.Context, b *busState, ev watcher.Event) {
	prev := b.rec
	if prev != nil {
		prev.cancel(errors.New("bus restarted again"))
	}
	if prev == nil {
		prev = b.lastRec
	}
	if prev != nil && prev.rec.ID != ev.OldID {
		prev = nil // not the recovery of the instance that just went away
	}
	snapshot := b.downPeers
	if len(snapshot) == 0 {
		snapshot = ev.Peers
	}
	rctx, cancel := context.WithCancelCause(ctx)
	now := time.Now()
	r := &recovery{
		rec:    control.Recovery{Bus: b.name, OldID: ev.OldID, ID: ev.ID, Downtime: ev.Downtime, Started: now, Jobs: []control.Job{}},
		cancel: cancel,
		done:   make(chan struct{}),
		// Restarted comes with the Up, Downtime after the Down.
		wentDown: ev.Time.Add(-ev.Downtime),
	}
	if ev.Time.IsZero() {
		r.wentDown = now.Add(-ev.Downtime)
	}
	b.lastOldID, b.lastDowntime = ev.OldID, ev.Downtime
	b.restarts = append(slices.DeleteFunc(b.restarts, func(t time.Time) bool { return now.Sub(t) >= stormWindow }), now)
	if len(b.restarts) >= e.cfg.stormRestarts {
		r.settle = e.cfg.stormSettle
		r.rec.Decision = fmt.Sprintf("the bus restarted %d times within %s: apps are recovered once it has stayed up %s",
			len(b.restarts), shortDuration(stormWindow), shortDuration(r.settle))
	}
	b.rec, b.lastRec, e.last = r, nil, r
	e.wg.Go(func() { e.planAndRun(ctx, rctx, b, r, prev, snapshot) })
}

func (e *Engine) planAndRun(ctx, rctx context.Context, b *busState, r *recovery, prev *recovery, snapshot []watcher.Peer) {
	// Apps whose jobs a newer restart cancelled were not on the bus that
	// just went down (or were only starting): plan them again, with the
	// process the cancelled job started, so that it is stopped or seen
	// rather than started twice.
	var carried []control.PlannedJob
	if prev != nil {
		select {
		case <-prev.done:
		case <-ctx.Done():
		}
		e.mu.Lock()
		for _, jr := range prev.jobs {
			if prev.rec.Jobs[jr.idx].Outcome != control.Cancelled {
				continue
			}
			pj := jr.plan
			pj.Peers = slices.Clone(pj.Peers)
			if c := jr.started; c != nil {
				pj.Peers = append(pj.Peers, watcher.Peer{PID: c.pid, StartTime: c.start, UID: -1})
			}
			carried = append(carried, pj)
		}
		e.mu.Unlock()
	}
	jobs, unmatched := e.plan(b.name, snapshot)
	e.mu.Lock()
	for _, c := range carried {
		i := slices.IndexFunc(jobs, func(j control.PlannedJob) bool { return j.App == c.App })
		if i < 0 {
			c.Skip = ""
			if e.paused {
				c.Skip = skipPaused
			}
			jobs = append(jobs, c)
			continue
		}
		for _, p := range c.Peers {
			if !slices.ContainsFunc(jobs[i].Peers, func(q watcher.Peer) bool { return q.PID == p.PID && p.PID > 0 }) {
				jobs[i].Peers = append(jobs[i].Peers, p)
			}
		}
	}
	if len(carried) > 0 && r.settle == 0 {
		r.rec.Decision = fmt.Sprintf("bus restarted during the previous recovery; %d unfinished jobs planned again", len(carried))
	}
	e.mu.Unlock()
	e.runRecovery(ctx, rctx, b, r, jobs, unmatched, false)
}

// runRecovery runs the jobs of recovery r of bus b and ends it. unmatched
// are the peers of the restart that no rule covers (casualty and deaf
// copy candidates); resumed says r recovers the apps a pause skipped
// (resumeLocked): their grace is over, and the restart's casualties and
// deaf copies were looked for already.
func (e *Engine) runRecovery(ctx, rctx context.Context, b *busState, r *recovery, jobs []control.PlannedJob, unmatched []watcher.Peer, resumed bool) {
	ending, why := false, ""
	if e.cfg.Intent != nil {
		// Intent is the daemon's; it must not call back into the engine.
		ending, why = e.cfg.Intent(b.name)
	}
	e.mu.Lock()
	r.rec.Jobs = make([]control.Job, len(jobs))
	for i, pj := range jobs {
		r.rec.Jobs[i] = control.Job{App: pj.App, Bus: b.name, Action: string(pj.Rule.Action), Outcome: control.Pending}
		jr := &jobRun{idx: i, plan: pj, busID: r.rec.ID, settle: r.settle,
			since: r.wentDown, sinceWhat: "the bus went down", graceOver: resumed}
		if pj.Kept && len(pj.Peers) > 0 {
			jr.keptPID, jr.keptStart = pj.Peers[0].PID, pj.Peers[0].StartTime
		}
		r.jobs = append(r.jobs, jr)
		e.lastPeers[pj.App] = pj.Peers
	}
	r.planned = true
	// The keeper may have replayed before the plan was made, for an app
	// that it did not keep when the bus went down.
	var late []control.Job
	for _, rp := range b.kept.replays[r.rec.ID] {
		if j, ok := e.addReplayJobLocked(b, rp, time.Now()); ok {
			late = append(late, j)
		}
	}
	if ending {
		r.rec.Decision = "session ending: " + why + ": no recovery"
		for i := range r.rec.Jobs {
			r.rec.Jobs[i].Outcome, r.rec.Jobs[i].Reason = control.Skipped, "session ending: "+why
		}
	}
	if rctx.Err() != nil {
		for i := range r.rec.Jobs {
			r.rec.Jobs[i].Outcome, r.rec.Jobs[i].Reason = control.Cancelled, context.Cause(rctx).Error()
		}
	}
	decision := r.rec.Decision
	e.mu.Unlock()
	for _, j := range late {
		e.logKeptJob(j)
	}
	if !ending && !resumed {
		// Before the jobs: the bus may have started a new copy already.
		e.addDeaf(b, unmatched)
		e.checkDeaf(ctx, b.name)
	}
	e.notifyChanged()
	plan := make([]string, 0, len(jobs))
	for _, pj := range jobs {
		plan = append(plan, pj.App)
	}
	e.log.Info("recovery planned", "bus", b.name, "id", r.rec.ID, "downtime", r.rec.Downtime, "jobs", plan,
		"unmatched", len(unmatched), "decision", decision)

	var jobsWG sync.WaitGroup
	if !ending && rctx.Err() == nil {
		for _, jr := range r.jobs {
			jobsWG.Go(func() { e.runJob(rctx, b.name, r, jr) })
		}
		if !resumed {
			e.wg.Go(func() { e.watchCasualties(ctx, b.name, unmatched) })
		}
	}
	jobsWG.Wait()
	// A bus that went down again before the jobs could start leaves them
	// pending: cancelled, so that the next restart plans them again.
	e.mu.Lock()
	for i := range r.rec.Jobs {
		if j := &r.rec.Jobs[i]; j.Outcome == control.Pending {
			j.Outcome, j.Reason = control.Cancelled, "not started: "+causeOr(rctx, "the recovery ended")
		}
	}
	e.mu.Unlock()
	e.endRecovery(b, r)
}

// resumeLocked starts, once recovery is no longer paused, a recovery of
// the apps whose jobs the pause skipped in the last recovery of bus b, if
// that recovery was of the bus instance that is up now and has ended (a
// running one comes here from endRecovery), and that are neither back on
// the bus nor relaunched since by the user. Their peers are planned
// again, with the rules and restart limits in force now; the recovery is
// recorded as one of its own, of the same bus instance, whose Decision
// begins with resumedDecision. Called with e.mu held and Run running
// (ctx is Run's).
func (e *Engine) resumeLocked(ctx context.Context, b *busState) {
	prev := b.lastRec
	if b.rec != nil || prev == nil || !b.up || prev.rec.ID != b.id || prev.rec.ID == "" {
		return
	}
	var apps []string
	var peers []watcher.Peer
	for _, jr := range prev.jobs {
		if j := prev.rec.Jobs[jr.idx]; j.Outcome != control.Skipped || j.Reason != skipPaused {
			continue
		}
		// Someone saw to it meanwhile: a relaunch asked for by the user
		// (its job is the app's last), or the app came back.
		if j := e.lastJob[jr.plan.App]; j.Outcome != control.Skipped || j.Reason != skipPaused || back(b, jr.plan) {
			continue
		}
		apps = append(apps, jr.plan.App)
		for _, p := range jr.plan.Peers {
			if !slices.ContainsFunc(peers, func(q watcher.Peer) bool { return q.UniqueName == p.UniqueName && q.PID == p.PID }) {
				peers = append(peers, p)
			}
		}
	}
	if len(apps) == 0 {
		return
	}
	rctx, cancel := context.WithCancelCause(ctx)
	r := &recovery{
		rec: control.Recovery{Bus: b.name, OldID: prev.rec.OldID, ID: prev.rec.ID, Downtime: prev.rec.Downtime, Started: time.Now(),
			Decision: fmt.Sprintf("%s: %d apps the pause had skipped", resumedDecision, len(apps)), Jobs: []control.Job{}},
		cancel: cancel, done: make(chan struct{}), wentDown: prev.wentDown, settle: prev.settle,
	}
	if len(apps) == 1 {
		r.rec.Decision = resumedDecision + ": 1 app the pause had skipped"
	}
	// The new recovery is the bus's running one: a Down cancels it, and
	// the restart after carries its cancelled jobs, as for any other.
	b.rec, b.lastRec, e.last = r, nil, r
	e.log.Info("recovering the apps the pause skipped", "bus", b.name, "id", b.id, "apps", apps)
	e.wg.Go(func() {
		jobs, _ := e.plan(b.name, peers)
		jobs = slices.DeleteFunc(jobs, func(pj control.PlannedJob) bool { return !slices.Contains(apps, pj.App) })
		e.runRecovery(ctx, rctx, b, r, jobs, nil, true)
	})
}

// causeOr returns why ctx ended, or alt while it has not.
func causeOr(ctx context.Context, alt string) string {
	if err := context.Cause(ctx); err != nil {
		return err.Error()
	}
	return alt
}

// endRecovery records an ended recovery: in the status and the history.
func (e *Engine) endRecovery(b *busState, r *recovery) {
	e.mu.Lock()
	rec := r.snapshot()
	e.mu.Unlock()
	rec.Ended = time.Now()
	// History first: whoever sees the recovery ended in Status finds it
	// in History too.
	if err := e.hist.append(rec); err != nil {
		e.log.Warn("history not written", "err", err)
	}
	e.mu.Lock()
	r.rec.Ended = rec.Ended
	r.cancel(errors.New("recovery ended"))
	if b.rec == r {
		b.rec = nil
		b.lastRec = r
		// Recovery was resumed while r ran: Resume left the jobs the
		// pause skipped to r's end. Under the same lock as Resume's
		// look, so that exactly one of them starts their recovery.
		if !e.paused && e.runCtx != nil && e.runCtx.Err() == nil {
			e.resumeLocked(e.runCtx, b)
		}
	}
	e.mu.Unlock()
	close(r.done)
	counts := map[control.Outcome]int{}
	for _, j := range rec.Jobs {
		counts[j.Outcome]++
	}
	e.log.Info("recovery ended", "bus", rec.Bus, "id", rec.ID, "took", rec.Ended.Sub(rec.Started), "outcomes", counts)
	e.notifyChanged()
	if e.cfg.RecoveryEnded != nil {
		e.cfg.RecoveryEnded(rec)
	}
}

// setJob updates job idx of r and publishes the change.
func (e *Engine) setJob(r *recovery, idx int, f func(j *control.Job)) {
	e.mu.Lock()
	j := &r.rec.Jobs[idx]
	f(j)
	if j.Outcome != control.Pending {
		e.lastJob[j.App] = *j
	}
	e.mu.Unlock()
	e.notifyChanged()
}

// result is how a job ended.
type result struct {
	outcome control.Outcome
	reason  string
	pid     int
	action  appdb.Action // if not the rule's: the action taken instead
}

func (e *Engine) runJob(ctx context.Context, bus string, r *recovery, jr *jobRun) {
	pj := jr.plan
	// A kept app needs nothing, whatever would skip its rule's action:
	// its job records the keeper's replay (recoverApp).
	if pj.Skip != "" && jr.keptPID == 0 {
		e.setJob(r, jr.idx, func(j *control.Job) { j.Outcome, j.Reason, j.Started = control.Skipped, pj.Skip, time.Now() })
		e.log.Info("job skipped", "app", pj.App, "reason", pj.Skip)
		return
	}
	// One job per app at a time: a job cancelled by a newer restart
	// finishes (and hands over the process it started) before the next
	// one looks.
	unlock, err := e.lockApp(ctx, pj.App)
	if err != nil {
		e.setJob(r, jr.idx, func(j *control.Job) { j.Outcome, j.Reason, j.Started = control.Cancelled, err.Error(), time.Now() })
		return
	}
	defer unlock()
	started := time.Now()
	e.setJob(r, jr.idx, func(j *control.Job) { j.Outcome, j.Started = control.Running, started })
	res := e.recoverApp(ctx, bus, jr, false)
	if ctx.Err() != nil && !res.outcome.Ended() {
		res = result{outcome: control.Cancelled, reason: context.Cause(ctx).Error()}
	}
	e.setJob(r, jr.idx, func(j *control.Job) {
		j.Outcome, j.Reason, j.PID, j.Took = res.outcome, res.reason, res.pid, time.Since(started)
		if res.action != "" {
			j.Action = string(res.action)
		}
	})
	level, event := jobEvent(res.outcome)
	e.log.Log(ctx, level, "job ended", event, "app", pj.App, "bus", bus, "outcome", res.outcome, "reason", res.reason,
		"pid", res.pid, "took", time.Since(started))
}

// jobEvent is the level of a job's record, a warning for a failure, and
// the event it names, for the journal's MESSAGE_ID: an app recovered, or
// a recovery failed; none for a job skipped or cancelled.
func jobEvent(o control.Outcome) (slog.Level, slog.Attr) {
	switch {
	case o.Recovered():
		return slog.LevelInfo, slog.String(journallog.EventKey, journallog.AppRecovered)
	case o == control.Failed:
		return slog.LevelWarn, slog.String(journallog.EventKey, journallog.RecoveryFailed)
	}
	return slog.LevelInfo, slog.Attr{}
}

func (e *Engine) lockApp(ctx context.Context, app string) (func(), error) {
	e.mu.Lock()
	l := e.appLocks[app]
	if l == nil {
		l = make(chan struct{}, 1)
		e.appLocks[app] = l
	}
	e.mu.Unlock()
	select {
	case l <- struct{}{}:
		return func() { <-l }, nil
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	}
}

// waitFor waits until cond holds for bus (checked under e.mu on every
// change of the bus), until deadline, ctx or abort. It reports whether cond
// held.
func (e *Engine) waitFor(ctx context.Context, bus string, deadline time.Time, abort <-chan struct{}, cond func(b *busState) bool) bool {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		e.mu.Lock()
		b := e.bus(bus)
		ok := b.up && cond(b)
		ch := b.notify
		e.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ch:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		case <-abort:
			return false
		}
	}
}

// back reports whether the app of job pj is on the bus: all its names are
// owned or, for a rule without names, one of its processes is connected.
func back(b *busState, pj control.PlannedJob, extra ...*child) bool {
	if len(pj.Rule.Names) > 0 {
		for _, n := range pj.Rule.Names {
			if _, ok := b.owners[n]; !ok {
				return false
			}
		}
		return true
	}
	// The keeper's kept apps are on the bus through its connections.
	for _, p := range slices.Concat(slices.Collect(maps.Values(b.peers)), b.kept.peers) {
		for _, q := range pj.Peers {
			if q.PID > 0 && p.PID == q.PID && (q.StartTime == 0 || p.StartTime == q.StartTime) {
				return true
			}
		}
		for _, c := range extra {
			if c != nil && p.PID == c.pid {
				return true
			}
		}
	}
	return false
}

// afterTimeout bounds the wait for the names in a rule's after.
func afterTimeout(r appdb.Rule) time.Duration { return max(30*time.Second, r.ReadyTimeout) }

// recoverApp runs one job: after, grace, act, ready. forced (relaunch-now)
// skips the grace, the pause and the restart limit.
func (e *Engine) recoverApp(ctx context.Context, bus string, jr *jobRun, forced bool) result {
	pj := jr.plan
	r := pj.Rule
	if jr.keptPID > 0 && !forced {
		if res, ok := e.awaitReplay(ctx, bus, jr); ok {
			return res
		}
		// It died: not kept through this restart.
		switch {
		case strings.HasPrefix(pj.App, "kept:"):
			// Kept by hand, without a rule: busmedic has no word to
			// start it again.
			return result{outcome: control.Failed, reason: "it exited while the bus was down", action: appdb.ActionKeep}
		case pj.Skip != "":
			return result{outcome: control.Skipped, reason: pj.Skip}
		}
	}
	for _, name := range r.After {
		d := afterTimeout(r)
		if !e.waitFor(ctx, bus, time.Now().Add(d), nil, func(b *busState) bool { _, ok := b.owners[name]; return ok }) {
			if ctx.Err() != nil {
				return result{outcome: control.Cancelled, reason: context.Cause(ctx).Error()}
			}
			return result{outcome: control.Failed, reason: fmt.Sprintf("%s (after) did not appear within %s", name, shortDuration(d))}
		}
	}
	dead := false // every process of the app had exited: no grace
	if !forced {
		// The grace lets a living app reconnect by itself; an app whose
		// processes have all exited cannot, so its wait ends with them.
		gctx, stopWatch := context.WithCancel(ctx)
		exited := allExited(gctx, pj.Peers)
		grace := r.Grace
		if jr.graceOver {
			grace = 0 // waitFor still looks once
		}
		isBack := e.waitFor(ctx, bus, time.Now().Add(grace), exited, func(b *busState) bool { return back(b, pj) })
		dead = isClosed(exited)
		stopWatch()
		if isBack {
			return result{outcome: control.Reconnected, reason: "back on the bus by itself"}
		}
		if ctx.Err() != nil {
			return result{outcome: control.Cancelled, reason: context.Cause(ctx).Error()}
		}
		if !e.settled(ctx, bus, jr) {
			return result{outcome: control.Cancelled, reason: context.Cause(ctx).Error()}
		}
		if e.cfg.Intent != nil {
			if ending, why := e.cfg.Intent(bus); ending {
				return result{outcome: control.Skipped, reason: "session ending: " + why}
			}
		}
		e.mu.Lock()
		paused := e.paused
		limited := limitReached(r, e.crashes[r.ID], time.Now())
		e.mu.Unlock()
		if paused {
			return result{outcome: control.Skipped, reason: skipPaused}
		}
		if limited {
			return result{outcome: control.Skipped, reason: limitReason(r)}
		}
	}
	action := r.Action
	if forced && (action == appdb.ActionNotify || action == appdb.ActionIgnore) {
		action = appdb.ActionRelaunch // the user asked for it
	}
	if forced && action == appdb.ActionSignal && !slices.ContainsFunc(pj.Peers, func(p watcher.Peer) bool { return alive(p.PID, p.StartTime) }) {
		action = appdb.ActionRelaunch // nothing left to signal, and the user asked for the app
	}
	var res result
	switch action {
	case appdb.ActionRelaunch, appdb.ActionKeep:
		// An app to keep that is not kept (it died, or was started
		// before its rule) is relaunched through the keeper.
		res = e.relaunch(ctx, bus, jr)
	case appdb.ActionSignal:
		res = e.signal(ctx, bus, jr)
	case appdb.ActionHook:
		res = e.hook(ctx, bus, jr)
	case appdb.ActionNotify:
		res = e.notify(ctx, bus, jr)
	case appdb.ActionIgnore:
		res = result{outcome: control.Skipped, reason: "rule says ignore"}
	default:
		return result{outcome: control.Failed, reason: fmt.Sprintf("unknown action %q", r.Action)}
	}
	if action != r.Action {
		res.action = action // the history tells what was done
	}
	if dead && res.outcome == control.Relaunched && res.reason == "" {
		res.reason = "it had exited with its bus: no grace"
	}
	return res
}

// The storm guard: a bus restarted stormRestarts times within stormWindow
// (a crash loop of the bus daemon) gets its apps back once it has stayed up
// stormSettle, instead of at every restart. It is generous: a maintainer
// who restarts the bus every few seconds to test it is not in a storm.
const (
	stormRestarts = 30
	stormWindow   = time.Minute
	stormSettle   = 5 * time.Second
)

// settled waits, in a restart storm, until the bus instance of the job has
// stayed up for the recovery's settle time. It reports false if ctx ended
// first (the bus went down again, which cancels the recovery).
func (e *Engine) settled(ctx context.Context, bus string, jr *jobRun) bool {
	if jr.settle == 0 {
		return true
	}
	e.mu.Lock()
	since := e.bus(bus).since
	e.mu.Unlock()
	t := time.NewTimer(time.Until(since.Add(jr.settle)))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// allExited returns a channel closed once every process of peers has
// exited (or is known to be gone), or nil if that cannot be told: a peer
// without a verified pid might be the app, alive.
func allExited(ctx context.Context, peers []watcher.Peer) <-chan struct{} {
	if len(peers) == 0 {
		return nil
	}
	var procs []*process
	for _, p := range peers {
		if p.PID <= 0 {
			// The bus did not say who it is (a TCP peer, credentials
			// that failed): it may be the app, alive.
			for _, q := range procs {
				q.close()
			}
			return nil
		}
		proc, err := openProcess(p.PID, p.StartTime)
		switch {
		case err == nil:
			procs = append(procs, proc)
		case errors.Is(err, errGone), errors.Is(err, errNotSame):
		default: // not ours, or unverifiable: it may live on
			for _, q := range procs {
				q.close()
			}
			return nil
		}
	}
	done := make(chan struct{})
	if len(procs) == 0 {
		close(done)
		return done
	}
	go func() {
		defer func() {
			for _, q := range procs {
				q.close()
			}
		}()
		for _, q := range procs {
			// wait gives up at its limit; ctx ends it sooner.
			for !q.wait(ctx, time.Minute) {
				if ctx.Err() != nil {
					return
				}
			}
		}
		close(done)
	}()
	return done
}

// recordCrash notes that c, the app of rule id that busmedic started on bus
// instance busID, failed while that bus stayed up: a crash for the restart
// limit. An exit with the bus is not one, nor a clean exit (the user quit
// it), nor one busmedic itself asked for.
func (e *Engine) recordCrash(c *child, bus, busID, id string) {
	if c.stopping.Load() || (c.state != nil && c.state.Success()) {
		return
	}
	if e.busLost(context.Background(), bus, busID) {
		return
	}
	e.mu.Lock()
	now := time.Now()
	e.crashes[id] = append(slices.DeleteFunc(e.crashes[id], func(t time.Time) bool { return now.Sub(t) > 24*time.Hour }), now)
	e.mu.Unlock()
	e.log.Info("app crashed", "app", id, "bus", bus)
	e.notifyChanged()
}

// relaunch brings the app back: through the user manager when it runs in
// a user service (relaunchUnit), else by starting its command itself.
func (e *Engine) relaunch(ctx context.Context, bus string, jr *jobRun) result {
	if jr.plan.Unit != "" {
		return e.relaunchUnit(ctx, bus, jr)
	}
	return e.relaunchExec(ctx, bus, jr)
}

// relaunchExec stops what is left of the app (verified pid and start time
// only) and starts it once. Under systemd the app then runs in a scope of
// its own in app.slice (scope.go), not in busmedic's unit; where that
// fails it stays in busmedic's cgroup (busmedic.service's
// KillMode=process lets it outlive busmedic's restarts).
func (e *Engine) relaunchExec(ctx context.Context, bus string, jr *jobRun) result {
	pj := jr.plan
	r := pj.Rule
	if r.Action == appdb.ActionKeep && e.cfg.Self == "" {
		return result{outcome: control.Failed, reason: "busmedic's own executable is unknown: it cannot start the app through busmedic keep"}
	}
	if res, ok := e.stopLeftovers(ctx, bus, pj, func(watcher.Peer) bool { return true }); !ok {
		return res
	}
	// While we stopped it, it may have come back (or someone started it).
	e.mu.Lock()
	isBack := len(r.Names) > 0 && back(e.bus(bus), pj)
	e.mu.Unlock()
	if isBack {
		return result{outcome: control.Reconnected, reason: "back on the bus by itself"}
	}
	if len(pj.Command) == 0 {
		return result{outcome: control.Failed, reason: "nothing to start: the rule has no exec and the process's command line is unknown"}
	}
	// The slot bounds how many apps are started at once; stopping (mostly
	// waiting for an exit) does not take one, so that a few apps slow to
	// die do not hold up the others.
	select {
	case e.act <- struct{}{}:
	case <-ctx.Done():
		return result{outcome: control.Cancelled, reason: context.Cause(ctx).Error()}
	}
	// The slot is given back once the app runs: the wait for its scope
	// (up to scopeWait on a busy user manager) starts nothing.
	release := sync.OnceFunc(func() { <-e.act })
	inScope := e.settleInScope(ctx, pj.App, r.DisplayName()+", started by busmedic")
	c, err := startProcess(startSpec{app: pj.App, argv: pj.Command, dir: pj.Dir, env: e.env(r.Env), log: e.logPath(pj.App), logLimit: e.cfg.logLimit,
		settle: func(pid int) {
			release()
			inScope(pid)
		}})
	release()
	if err != nil {
		return result{outcome: control.Failed, reason: err.Error()}
	}
	busID := jr.busID
	e.adopt(c, func() { e.recordCrash(c, bus, busID, r.ID) })
	e.mu.Lock()
	jr.started = c
	e.mu.Unlock()
	e.log.Info("started", "app", pj.App, "pid", c.pid, "command", pj.Command)
	return e.ready(ctx, bus, jr, c, control.Relaunched).withLogWarning(c)
}

// stopLeftovers stops the app's processes that stop selects (verified pid
// and start time only), as a relaunch does before it starts the app, and
// waits for the bus to drop them. ok is false, with the job's result,
// when one cannot be stopped.
func (e *Engine) stopLeftovers(ctx context.Context, bus string, pj control.PlannedJob, stop func(watcher.Peer) bool) (res result, ok bool) {
	r := pj.Rule
	var stopped []int
	for _, p := range pj.Peers {
		if p.PID <= 0 || !stop(p) {
			continue
		}
		e.markStopping(p.PID, p.StartTime)
		err := stopProcess(ctx, p.PID, p.StartTime, r.StopTimeout)
		switch {
		case err == nil:
			e.log.Info("stopped", "app", pj.App, "pid", p.PID)
			stopped = append(stopped, p.PID)
		case errors.Is(err, errGone):
			stopped = append(stopped, p.PID)
		case errors.Is(err, errNotSame):
			// The process we saw is gone; its pid is someone else's now.
			e.log.Info("not signalling a reused pid", "app", pj.App, "pid", p.PID, "err", err)
		case errors.Is(err, errUnverifiable):
			if alive(p.PID, 0) {
				return result{outcome: control.Failed, reason: fmt.Sprintf("cannot tell whether pid %d is still the app (start time unknown); not starting a second copy", p.PID)}, false
			}
		case ctx.Err() != nil:
			return result{outcome: control.Cancelled, reason: context.Cause(ctx).Error()}, false
		default:
			return result{outcome: control.Failed, reason: fmt.Sprintf("could not stop pid %d: %v", p.PID, err)}, false
		}
	}
	if ctx.Err() != nil {
		return result{outcome: control.Cancelled, reason: context.Cause(ctx).Error()}, false
	}
	if len(stopped) > 0 {
		// The bus drops a dead client's names a moment after it exits;
		// until then a new copy could not take them, and the names would
		// look as if the app were back.
		e.waitFor(ctx, bus, time.Now().Add(2*time.Second), nil, func(b *busState) bool {
			for _, p := range b.peers {
				if slices.Contains(stopped, p.PID) {
					return false
				}
			}
			return true
		})
	}
	return result{}, true
}

// markStopping notes that busmedic is about to stop pid, if it is a child
// it started: its exit is then no crash.
func (e *Engine) markStopping(pid int, start uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c := e.children[pid]; c != nil && (start == 0 || c.start == start) {
		c.stopping.Store(true)
	}
}

// adopt records a started child until it exits, then calls exited if set.
func (e *Engine) adopt(c *child, exited func()) {
	e.mu.Lock()
	e.children[c.pid] = c
	e.mu.Unlock()
	// Not in e.wg: this goroutine lives as long as the app, which outlives
	// Run by design.
	go func() {
		<-c.exited
		e.mu.Lock()
		delete(e.children, c.pid)
		e.mu.Unlock()
		if exited != nil {
			exited()
		}
	}()
}

// settleTime is how long a started app without names must stay alive (and
// unseen on the bus) to count as started.
const settleTime = time.Second

// ready waits for a started (or signalled) app: for its names, or with no
// names for its process on the bus or alive after settleTime.
func (e *Engine) ready(ctx context.Context, bus string, jr *jobRun, c *child, ok control.Outcome) result {
	pj := jr.plan
	r := pj.Rule
	pid := 0
	var exited <-chan struct{}
	if c != nil {
		pid, exited = c.pid, c.exited
	}
	if len(r.Names) > 0 {
		if e.waitFor(ctx, bus, time.Now().Add(r.ReadyTimeout), exited, func(b *busState) bool { return back(b, pj) }) {
			return result{outcome: ok, pid: pid}
		}
		switch {
		case ctx.Err() != nil:
			return result{outcome: control.Cancelled, reason: context.Cause(ctx).Error(), pid: pid}
		case c != nil && isClosed(c.exited):
			if e.busLost(ctx, bus, jr.busID) {
				return result{outcome: control.Cancelled, reason: "the bus went away while the app was starting", pid: pid}
			}
			return result{outcome: control.Failed, reason: c.exitReason() + logHint(e.logPath(pj.App)), pid: pid}
		}
		return result{outcome: control.Failed, reason: fmt.Sprintf("%s did not appear within %s", strings.Join(r.Names, ", "), shortDuration(r.ReadyTimeout)), pid: pid}
	}
	if c == nil {
		return result{outcome: ok}
	}
	settle := min(settleTime, r.ReadyTimeout)
	pj2 := pj
	pj2.Peers = nil
	if e.waitFor(ctx, bus, time.Now().Add(settle), exited, func(b *busState) bool { return back(b, pj2, c) }) {
		return result{outcome: ok, pid: pid}
	}
	switch {
	case ctx.Err() != nil:
		return result{outcome: control.Cancelled, reason: context.Cause(ctx).Error(), pid: pid}
	case isClosed(c.exited):
		if e.busLost(ctx, bus, jr.busID) {
			return result{outcome: control.Cancelled, reason: "the bus went away while the app was starting", pid: pid}
		}
		return result{outcome: control.Failed, reason: c.exitReason() + logHint(e.logPath(pj.App)), pid: pid}
	}
	return result{outcome: ok, reason: fmt.Sprintf("running after %s, not seen on the bus", shortDuration(settle)), pid: pid}
}

// busLostWait is how long a started app's early exit is attributed to the
// bus going away: the app sees the disconnect about when the watcher does,
// and its exit may be noticed before the watcher's Down.
const busLostWait = 250 * time.Millisecond

// busLost reports whether bus instance id went away (or ctx ended) now or
// within busLostWait. Then a started app that exited was a victim of the
// bus, not a failure: the job ends cancelled and the next restart plans it
// again.
func (e *Engine) busLost(ctx context.Context, bus, id string) bool {
	if id == "" {
		return false
	}
	t := time.NewTimer(busLostWait)
	defer t.Stop()
	for {
		e.mu.Lock()
		b := e.bus(bus)
		lost := !b.up || b.id != id
		ch := b.notify
		e.mu.Unlock()
		if lost || ctx.Err() != nil {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return true
		case <-t.C:
			return false
		}
	}
}

func logHint(path string) string {
	if path == "" {
		return ""
	}
	return " (see " + path + ")"
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// signal sends the rule's signal to the app's processes and waits for its
// names.
func (e *Engine) signal(ctx context.Context, bus string, jr *jobRun) result {
	pj := jr.plan
	r := pj.Rule
	sig := r.SignalNumber()
	if sig == 0 {
		return result{outcome: control.Failed, reason: "the rule has no signal"}
	}
	var signalled []*process
	defer func() {
		for _, p := range signalled {
			p.close()
		}
	}()
	var last error
	for _, peer := range pj.Peers {
		p, err := openProcess(peer.PID, peer.StartTime)
		if err == nil {
			if err = p.signal(sig); err != nil {
				p.close()
			}
		}
		if err != nil {
			last = err
			continue
		}
		e.log.Info("signalled", "app", pj.App, "pid", p.pid, "signal", r.Signal)
		signalled = append(signalled, p)
	}
	if len(signalled) == 0 {
		return result{outcome: control.Failed, reason: "no process to signal: " + whyNotSignalled(last)}
	}
	// Follow the signalled processes as if they were ours: if the signal
	// ends them instead of bringing the app back, the job fails at once
	// rather than after ready_timeout.
	c := &child{app: pj.App, pid: signalled[0].pid, exited: make(chan struct{})}
	wctx, cancel := context.WithCancel(ctx)
	following := make(chan struct{})
	go func() {
		defer close(following)
		for _, p := range signalled {
			if !p.wait(wctx, r.ReadyTimeout+settleTime) {
				return // one still runs: the app may yet come back
			}
		}
		close(c.exited)
	}()
	defer func() { cancel(); <-following }() // before the pidfds close
	res := e.ready(ctx, bus, jr, c, control.Signalled)
	if res.outcome == control.Failed {
		if isClosed(c.exited) {
			var pids []string
			for _, p := range signalled {
				pids = append(pids, strconv.Itoa(p.pid))
			}
			which := "pid "
			if len(pids) > 1 {
				which = "pids "
			}
			res.reason = fmt.Sprintf("%s%s exited after %s instead of coming back", which, strings.Join(pids, ", "), r.Signal)
		} else {
			res.reason += " after " + r.Signal
		}
	}
	return res
}

// whyNotSignalled tells people why a process seen on the bus was not
// signalled.
func whyNotSignalled(err error) string {
	switch {
	case err == nil:
		return "none was seen on the bus"
	case errors.Is(err, errGone):
		return "it has exited"
	case errors.Is(err, errNotSame):
		return "its pid now belongs to another process"
	case errors.Is(err, errNotOurs):
		return "it runs as another user"
	case errors.Is(err, errUnverifiable):
		return "its start time is unknown, so it cannot be told from another process"
	}
	return err.Error()
}

// hook runs the rule's hook command (no shell), waits for it to exit
// within ready_timeout, then for the app's names.
func (e *Engine) hook(ctx context.Context, bus string, jr *jobRun) result {
	pj := jr.plan
	r := pj.Rule
	c, err := startProcess(startSpec{app: pj.App, argv: r.Hook, dir: r.Workdir, env: e.env(r.Env), log: e.logPath(pj.App), logLimit: e.cfg.logLimit,
		settle: e.settleInScope(ctx, pj.App, "hook of "+r.DisplayName()+", run by busmedic")})
	if err != nil {
		return result{outcome: control.Failed, reason: "hook: " + err.Error()}
	}
	e.adopt(c, nil)
	t := time.NewTimer(r.ReadyTimeout)
	defer t.Stop()
	select {
	case <-c.exited:
	case <-t.C:
		return result{outcome: control.Failed, reason: fmt.Sprintf("hook still running after %s", shortDuration(r.ReadyTimeout)), pid: c.pid}
	case <-ctx.Done():
		return result{outcome: control.Cancelled, reason: context.Cause(ctx).Error(), pid: c.pid}
	}
	if !c.state.Success() {
		return result{outcome: control.Failed, reason: "hook " + c.exitReason() + logHint(e.logPath(pj.App)), pid: c.pid}
	}
	return e.ready(ctx, bus, jr, nil, control.Hooked).withLogWarning(c)
}

// notifyTimeout bounds how long a notification waits for the user.
const notifyTimeout = 10 * time.Minute

// notify asks the user; "relaunch" chosen relaunches the app.
func (e *Engine) notify(ctx context.Context, bus string, jr *jobRun) result {
	pj := jr.plan
	if e.cfg.Notifier == nil {
		return result{outcome: control.Failed, reason: "notify: no notification service configured"}
	}
	nctx, cancel := context.WithTimeout(ctx, notifyTimeout)
	defer cancel()
	title := pj.Rule.DisplayName() + " lost its bus connection"
	body := fmt.Sprintf("The %s bus restarted and %s did not come back.", bus, pj.Rule.DisplayName())
	chosen, err := ShowNotice(nctx, e.cfg.Notifier, Notice{Title: title, Body: body, Critical: true, Actions: []Action{{Key: "relaunch", Label: "Relaunch", Command: "busmedic relaunch " + pj.App}}})
	switch {
	case ctx.Err() != nil:
		return result{outcome: control.Cancelled, reason: context.Cause(ctx).Error()}
	case err != nil:
		return result{outcome: control.Failed, reason: "notify: " + err.Error()}
	case chosen == "relaunch":
		res := e.relaunch(ctx, bus, jr)
		if res.outcome == control.Relaunched {
			res.reason = joinReasons("chosen in the notification", res.reason)
		}
		return res
	}
	return result{outcome: control.Notified, reason: "notification closed without relaunching"}
}

// watchCasualties waits the casualty grace for unmatched peers to come
// back, and records the ones that did not.
func (e *Engine) watchCasualties(ctx context.Context, bus string, peers []watcher.Peer) {
	defer func() {
		e.casualtyChecks.Add(1)
		e.notifyChanged()
	}()
	var candidates []watcher.Peer
	uid := currentUID()
	for _, p := range peers {
		// A peer that may have left by itself just before the bus went
		// (a finished command-line client) did not fall off.
		if p.PID > 0 && (p.UID < 0 || p.UID == uid) && len(p.Argv) > 0 && !p.MayHaveLeft {
			candidates = append(candidates, p)
		}
	}
	if len(candidates) == 0 {
		return
	}
	isBack := func(b *busState, p watcher.Peer) bool {
		// The bus starts it again at the next call to one of its names.
		if len(p.Names) > 0 && !slices.ContainsFunc(p.Names, func(n string) bool { return !b.activatable[n] }) {
			return true
		}
		for _, q := range b.peers {
			if q.PID == p.PID && q.StartTime == p.StartTime {
				return true
			}
			if sameProgram(p, q) {
				return true
			}
		}
		return false
	}
	e.waitFor(ctx, bus, time.Now().Add(e.cfg.CasualtyGrace), nil, func(b *busState) bool {
		return !slices.ContainsFunc(candidates, func(p watcher.Peer) bool { return !isBack(b, p) })
	})
	if ctx.Err() != nil {
		return
	}
	e.mu.Lock()
	b := e.bus(bus)
	now := time.Now()
	added := 0
	for _, p := range candidates {
		if isBack(b, p) {
			continue
		}
		id := casualtyID(p)
		if slices.ContainsFunc(e.casualties, func(c control.Casualty) bool { return c.ID == id }) {
			continue
		}
		e.casualties = append(e.casualties, control.Casualty{ID: id, Bus: bus, Peer: p, At: now})
		added++
	}
	if n := len(e.casualties); n > maxCasualties {
		e.casualties = slices.Delete(e.casualties, 0, n-maxCasualties)
	}
	e.mu.Unlock()
	if added > 0 {
		e.log.Info("casualties", "bus", bus, "count", added)
		e.notifyChanged()
	}
}

const maxCasualties = 50

// casualtyID names a casualty as "casualty:PROGRAM:PID": the colon keeps it
// apart from rule ids, which cannot hold one.
func casualtyID(p watcher.Peer) string { return processID("casualty", p) }

// processID names process p as "KIND:PROGRAM:PID".
func processID(kind string, p watcher.Peer) string {
	prog := "pid"
	if len(p.Argv) > 0 {
		prog = p.Argv[0][strings.LastIndexByte(p.Argv[0], '/')+1:]
	}
	return fmt.Sprintf("%s:%s:%d", kind, fileSafe(prog), p.PID)
}
