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

// RelaunchNow runs the action of rule id now, or starts casualty id once,
// and returns the ended job; an id that is neither is
// control.ErrUnknownApp. A relaunch stops the app first if it is
// running. A request from the user is not held back by Pause, the restart
// limit or the grace time; it does wait for the rule's after names. The
// job is recorded in the history as a recovery with Decision "relaunch
// requested".
func (e *Engine) RelaunchNow(ctx context.Context, id string) (control.Job, error) {
	if strings.HasPrefix(id, "casualty:") {
		return e.relaunchCasualty(ctx, id)
	}
	set := e.cfg.Rules()
	r, ok := set.Lookup(id)
	if set == nil || !ok {
		return control.Job{}, fmt.Errorf("relaunch %s: %w", id, control.ErrUnknownApp)
	}
	bus := string(r.Bus)
	if r.Bus == appdb.BusBoth {
		bus = string(appdb.BusSession)
	}
	// The app's processes: those on its bus now, else those of its last plan.
	e.mu.Lock()
	b := e.bus(bus)
	var peers []watcher.Peer
	for _, p := range b.peers {
		// The keeper's connections are its kept apps': the app is its
		// kept process, never the keeper.
		if p.PID > 0 && p.PID == b.kept.keeper() || ours(p) {
			continue
		}
		if m, ok := set.MatchBus(appdb.Bus(bus), p); ok && m.ID == id {
			peers = append(peers, p)
		}
	}
	for _, p := range b.kept.peers {
		if m, ok := set.MatchBus(appdb.Bus(bus), p); ok && m.ID == id {
			peers = append(peers, p)
		}
	}
	if len(peers) == 0 {
		peers = slices.Clone(e.lastPeers[id])
	}
	up, busID := b.up, b.id
	e.mu.Unlock()

	pj := control.PlannedJob{App: id, Bus: bus, Rule: r, Peers: peers}
	pj.Command, pj.Dir, pj.Shell, pj.Unit = startCommand(r, peers, e.cfg.Self, e.cfg.OwnUnit)
	return e.runNow(ctx, pj, up, busID)
}

func (e *Engine) relaunchCasualty(ctx context.Context, id string) (control.Job, error) {
	e.mu.Lock()
	i := slices.IndexFunc(e.casualties, func(c control.Casualty) bool { return c.ID == id })
	if i < 0 {
		e.mu.Unlock()
		return control.Job{}, fmt.Errorf("relaunch %s: %w", id, control.ErrUnknownApp)
	}
	c := e.casualties[i]
	b := e.bus(c.Bus)
	up, busID := b.up, b.id
	e.mu.Unlock()

	r := appdb.NewRule(id)
	r.ReadyTimeout = appdb.DefaultReadyTimeout
	pj := control.PlannedJob{App: id, Bus: c.Bus, Rule: r, Peers: []watcher.Peer{c.Peer}}
	pj.Command, pj.Dir, _ = command(r, pj.Peers)
	pj.Unit = jobUnit(r, pj.Peers, e.cfg.OwnUnit)
	j, err := e.runNow(ctx, pj, up, busID)
	if err == nil && (j.Outcome == control.Relaunched || j.Outcome == control.Reconnected) {
		e.mu.Lock()
		e.casualties = slices.DeleteFunc(e.casualties, func(c control.Casualty) bool { return c.ID == id })
		e.mu.Unlock()
		e.notifyChanged()
	}
	return j, err
}

func (e *Engine) runNow(ctx context.Context, pj control.PlannedJob, up bool, busID string) (control.Job, error) {
	r := &recovery{rec: control.Recovery{Bus: pj.Bus, ID: busID, Started: time.Now(), Decision: "relaunch requested",
		Jobs: []control.Job{{App: pj.App, Bus: pj.Bus, Action: string(pj.Rule.Action), Outcome: control.Pending}}}}
	jr := &jobRun{plan: pj, busID: busID, since: time.Now(), sinceWhat: "the relaunch was asked for"}
	started := time.Now()
	var res result
	if !up {
		res = result{outcome: control.Failed, reason: "the " + pj.Bus + " bus is down"}
	} else {
		unlock, err := e.lockApp(ctx, pj.App)
		if err != nil {
			return control.Job{}, fmt.Errorf("relaunch %s: %w", pj.App, err)
		}
		e.setJob(r, 0, func(j *control.Job) { j.Outcome, j.Started = control.Running, started })
		res = e.recoverApp(ctx, pj.Bus, jr, true)
		unlock()
	}
	e.setJob(r, 0, func(j *control.Job) {
		j.Outcome, j.Reason, j.PID, j.Started, j.Took = res.outcome, res.reason, res.pid, started, time.Since(started)
		if res.action != "" {
			j.Action = string(res.action)
		}
	})
	e.mu.Lock()
	r.rec.Ended = time.Now()
	rec := r.snapshot()
	e.mu.Unlock()
	if err := e.hist.append(rec); err != nil {
		e.log.Warn("history not written", "err", err)
	}
	e.log.Info("relaunch requested", "app", pj.App, "outcome", res.outcome, "reason", res.reason, "pid", res.pid)
	return rec.Jobs[0], nil
}
