package relaunch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"busmedic/appdb"
	"busmedic/relaunch/control"
	"busmedic/watcher"
)

// Deaf old copies of on-demand services.
//
// A service the bus starts on demand (it has a D-Bus service file: KDE's
// kglobalaccel5, kactivitymanagerd) may stay alive after its bus restarted
// without connecting to the new one, as QtDBus programs do. The new bus
// starts a new copy at the next call to one of its names, and the old copy
// runs for ever: after a few restarts a session has several of each. So
// the engine keeps, per bus, the peers of each restart that no rule covers
// and that may be such copies (deafCandidates, started by the bus:
// startedByBus), and stops one (stopProcess:
// same pid and start time, our uid) once one of its names has an owner on
// the new bus: the bus has started the replacement, or the name was asked
// for and someone took it. Until then the old copy is left alone, since
// nothing is lost while nobody asks for it. Candidates outlive later
// restarts: a copy whose name nobody asked for on one bus is just as deaf
// on the next. The setting stop_deaf_services turns this off. A pause
// holds the stop rather than cancelling it: the candidate stays, and is
// judged again at Resume (the user paused to decide later, not to keep
// the old copy for ever).
//
// One kind of candidate is not waited for: the copy dbus-broker started in
// a unit of its own (brokerStarted). While that unit runs, the new bus
// fails the first start of a new copy (see below), so waiting for the new
// copy would cost the user a failed call after every restart. Such a copy
// is stopped once the new bus has been up for brokerDeafGrace without it
// coming back (a timer per bus instance, which ends with the instance or
// the engine), under the same conditions as the others.

// serviceManagerName is the bus name of systemd, the system's or the
// user's service manager.
const serviceManagerName = "org.freedesktop.systemd1"

// deafCandidates picks, from the peers of a restart that no rule covers,
// the ones that may be deaf old copies of on-demand services: processes of
// uid, identified by pid and start time, that own names and only names the
// bus can start (activatable).
func deafCandidates(unmatched []watcher.Peer, activatable map[string]bool, uid int) []watcher.Peer {
	var out []watcher.Peer
	for _, p := range unmatched {
		switch {
		case p.PID <= 0 || p.StartTime == 0 || p.UID != uid:
			// Not known to be ours, or not told apart from a process
			// that reuses its pid: never signalled.
		case p.Unit != "" && !brokerStarted(p):
			// A process of a systemd user service is systemd's to stop
			// and start: systemd stops a Type=dbus unit whose name
			// vanished by itself, and ends what is left in a unit's
			// cgroup when the unit stops (dbus.service's holds the
			// services its dbus-daemon started), and the unit is the
			// only thing that knows how the service should run. Not
			// so the unit dbus-broker made to start the service: see
			// brokerStarted.
		case p.MayHaveLeft:
			// It had exited when the bus said goodbye.
		case p.Owns(serviceManagerName):
			// The user's own systemd: its name is activatable (a
			// service file says so, for the bus's sake), it runs in
			// init.scope, in no unit, and it reconnects by itself. It
			// is never a copy to stop, whoever owns its name first.
		case !ownsOnlyActivatable(p, activatable):
			// A name the bus cannot start has no new copy to wait
			// for; such a process is a rule's business.
		default:
			out = append(out, p)
		}
	}
	return out
}

// Under dbus-broker a service the bus starts on demand from an Exec= line
// (no SystemdService=) runs in a transient user unit that dbus-broker-launch
// makes for it, "dbus-:1.2-org.kde.kglobalaccel@0.service": the launcher's
// unique name on its bus, the service's name escaped for a unit name, and
// an instance number the launcher counts from 0 (bus1/dbus-broker,
// src/launch/service.c, service_activate). That unit is nobody's but the
// launcher's, and it outlives the bus: restarting dbus-broker.service ends
// the broker and the launcher, not the units the launcher started. So the
// deaf old copy in it is left as a unitless one would be, and is stopped the
// same way: by its process, not by StopUnit on its unit. The unit's name
// does not tell one copy from another: the new launcher usually gets the
// same unique name as the old one (":1.2") and counts from 0 again, so a
// name the old copy's unit had may later be the new copy's (while the old
// unit lives, systemd refuses it, and the first call that would start the
// new copy fails: so the old copy is not waited for, see brokerDeafGrace),
// while the pid and start time that stopProcess checks are the old copy's
// alone. Nothing
// is lost by not going through the manager: the unit runs the process with
// KillMode=process, so StopUnit too would signal only that process, and it
// ends when that process exits; it has no Restart=, and dbus-broker sets
// CollectMode=inactive-or-failed, so that the manager unloads it even when
// the copy had to be killed and the unit ended "failed": no failed unit is
// left behind.

// brokerDeafGrace is how long a deaf copy dbus-broker started may stay off
// the new bus before it is stopped without waiting for a new copy. It is
// the rules' default grace (appdb.DefaultGrace), the time busmedic gives
// any program to come back before it counts it as deaf, and a program that
// reconnects by itself does so well within it (a deaf Qt one never does).
// Shorter would risk stopping one that was about to reconnect; longer only
// stretches the time in which a call to the service fails.
const brokerDeafGrace = appdb.DefaultGrace

// brokerUnit matches the name of a unit dbus-broker-launch starts a service
// in: "dbus-" UNIQUE "-" ESCAPED "@" N ".service". UNIQUE is the launcher's
// unique name, which dbus-broker always makes ":1.N"; ESCAPED is the bus
// name as the launcher escapes it, "\xNN" (lower-case hex) for a byte
// other than [A-Za-z0-9:_.]: a bus name's "-" becomes "\x2d". Compiled at
// first use: package initialisation runs in every busmedic process, the
// tray's too, and its heap stays.
var brokerUnit = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^dbus-:1\.[0-9]+-((?:[A-Za-z0-9:_.]|\\x[0-9a-f]{2})+)@[0-9]+\.service$`)
})

// brokerUnitName returns the bus name whose start on demand made
// dbus-broker-launch start unit, if unit is the name of such a unit.
func brokerUnitName(unit string) (string, bool) {
	m := brokerUnit().FindStringSubmatch(unit)
	if m == nil {
		return "", false
	}
	var name strings.Builder
	for s := m[1]; s != ""; {
		if rest, ok := strings.CutPrefix(s, `\x`); ok {
			b, err := strconv.ParseUint(rest[:2], 16, 8)
			if err != nil {
				return "", false
			}
			name.WriteByte(byte(b))
			s = rest[2:]
			continue
		}
		name.WriteByte(s[0])
		s = s[1:]
	}
	return name.String(), true
}

// brokerStarted reports whether p runs in the unit dbus-broker-launch
// started it in, for one of the names p owns.
func brokerStarted(p watcher.Peer) bool {
	name, ok := brokerUnitName(p.Unit)
	return ok && p.Owns(name)
}

// startedByBus reports whether the bus at address started p on demand:
// dbus-broker starts such a service in a unit of its own (brokerStarted),
// dbus-daemon gives it its address as DBUS_STARTER_ADDRESS (starter reads
// it). A program the user started that owns only names the bus could
// start (an app with a service file of its own, open in its window) is
// neither: it is never stopped as a deaf copy, even when a new copy takes
// its name. A copy dbus-daemon started under systemd runs in dbus.service,
// which deafCandidates leaves to systemd.
func startedByBus(p watcher.Peer, address string, starter func(pid int) string) bool {
	if brokerStarted(p) {
		return true
	}
	s := starter(p.PID)
	return s != "" && address != "" && watcher.WithoutGUID(s) == watcher.WithoutGUID(address)
}

// ownsOnlyActivatable reports whether p owns names and the bus can start
// each of them.
func ownsOnlyActivatable(p watcher.Peer, activatable map[string]bool) bool {
	return len(p.Names) > 0 && !slices.ContainsFunc(p.Names, func(n string) bool { return !activatable[n] })
}

// deafVerdict is what becomes of a possible deaf copy after a change on
// its bus.
type deafVerdict int

const (
	// deafWait: none of its names has an owner yet.
	deafWait deafVerdict = iota
	// deafBack: the process is on the bus again; it was not deaf.
	deafBack
	// deafStop: a new copy owns one of its names; stop the old one.
	deafStop
	// deafStopStayedOff: dbus-broker started it (brokerStarted), and it
	// stayed off the new bus for the grace: stop it before its unit
	// fails the start of a new copy.
	deafStopStayedOff
	// deafLeave: it would be stopped (deafStop, deafStopStayedOff), but
	// stays (why says why).
	deafLeave
	// deafHeld: it would be stopped, but recovery is paused: it stays a
	// candidate until Resume.
	deafHeld
)

// deafView is what judgeDeaf looks at: the bus as the engine knows it and
// what governs busmedic's actions.
type deafView struct {
	owners      map[string]string       // well-known name -> unique name
	peers       map[string]watcher.Peer // by unique name
	activatable map[string]bool
	enabled     bool // stop_deaf_services
	paused      bool
	// overdue: the bus has been up for brokerDeafGrace, so that a copy
	// dbus-broker started is not waited for any longer.
	overdue bool
	// rule returns the id of the rule that covers p, if any.
	rule func(p watcher.Peer) (string, bool)
}

// judgeDeaf decides about the possible deaf copy p: with deafStop,
// deafLeave and deafHeld it also returns the name that has a new owner and
// that owner (its zero value if the engine does not know the peer). With
// deafStopStayedOff, and deafLeave and deafHeld of a copy that stayed off,
// the name is the one dbus-broker started it for, and no owner.
func judgeDeaf(p watcher.Peer, v deafView) (verdict deafVerdict, name string, owner watcher.Peer, why string) {
	for _, n := range p.Names {
		if u, ok := v.owners[n]; ok {
			name, owner = n, v.peers[u]
			break
		}
	}
	stop := deafStop
	if name == "" {
		if !v.overdue || !brokerStarted(p) {
			// Cheap, and the usual answer: checked at every name
			// change while candidates are kept.
			return deafWait, "", watcher.Peer{}, ""
		}
		stop = deafStopStayedOff
		name, _ = brokerUnitName(p.Unit)
	}
	// Back on the bus, maybe without its names yet (a copy that stayed
	// off is judged with no owner to look at).
	for _, q := range v.peers {
		if q.PID == p.PID && q.StartTime == p.StartTime {
			return deafBack, "", watcher.Peer{}, ""
		}
	}
	switch {
	case !v.enabled:
		why = "stop_deaf_services = false"
	case v.paused:
		return deafHeld, name, owner, "recovery is paused"
	case !ownsOnlyActivatable(p, v.activatable):
		why = "the bus can no longer start all of its names"
	default:
		if id, ok := v.rule(p); ok {
			why = "rule " + id + " covers it"
		}
	}
	if why != "" {
		return deafLeave, name, owner, why
	}
	return stop, name, owner, ""
}

// deafStopping is one deaf copy to stop.
type deafStopping struct {
	peer  watcher.Peer
	name  string       // its name that has a new owner, or that dbus-broker started it for
	owner watcher.Peer // that owner
	// stayedOff, if not 0, is how long it stayed off the new bus: it is
	// stopped for that (deafStopStayedOff), with no new owner.
	stayedOff time.Duration
}

// deafRestart is the restart after which deaf copies are stopped, for
// the history.
type deafRestart struct {
	bus, oldID, id string
	downtime       time.Duration
	since          time.Time // when the bus came back
	address        string    // the bus's address, which the bus gives the services it starts
}

// addDeaf notes the possible deaf copies among the peers of b's restart
// that no rule covers; the ones already gone are left out.
func (e *Engine) addDeaf(b *busState, unmatched []watcher.Peer) {
	e.mu.Lock()
	cands := deafCandidates(unmatched, b.activatable, currentUID())
	address := b.address
	e.mu.Unlock()
	cands = slices.DeleteFunc(cands, func(p watcher.Peer) bool {
		if !startedByBus(p, address, starterAddress) {
			e.log.Debug("not a deaf copy to stop: the bus did not start it", "bus", b.name, "peer", p.String())
			return true
		}
		return !alive(p.PID, p.StartTime)
	})
	if len(cands) == 0 {
		return
	}
	e.mu.Lock()
	for _, p := range cands {
		b.deaf[p.PID] = p
	}
	e.mu.Unlock()
	for _, p := range cands {
		if brokerStarted(p) {
			e.log.Debug("possible deaf old copy: stopped unless it is back on the bus within the grace", "bus", b.name, "peer", p.String(),
				"unit", p.Unit, "grace", e.cfg.deafGrace)
			continue
		}
		e.log.Debug("possible deaf old copy: stopped once the bus starts a new one", "bus", b.name, "peer", p.String())
	}
}

// checkDeaf judges the possible deaf copies of bus after a change, and
// stops (in the background) those whose new copy is on the bus and those
// dbus-broker started that stayed off it for the grace; for the latter it
// sets a timer (deafTimerLocked) while their grace runs.
func (e *Engine) checkDeaf(ctx context.Context, bus string) {
	e.mu.Lock()
	none := len(e.bus(bus).deaf) == 0
	e.mu.Unlock()
	if none {
		return
	}
	// The rules are read outside e.mu: Rules is the daemon's.
	set := e.cfg.Rules()
	settings := appdb.DefaultSettings()
	if set != nil {
		settings = set.Settings()
	}
	e.mu.Lock()
	b := e.bus(bus)
	if !b.up {
		e.mu.Unlock()
		return
	}
	grace := e.cfg.deafGrace
	due := b.upAt.Add(grace)
	v := deafView{owners: b.owners, peers: b.peers, activatable: b.activatable, enabled: settings.StopDeafServices,
		paused: e.paused, overdue: !time.Now().Before(due), rule: func(p watcher.Peer) (string, bool) {
			r, ok := set.MatchBus(appdb.Bus(bus), p)
			return r.ID, ok
		}}
	var stops, stayedOff []deafStopping
	type leaving struct {
		deafStopping
		why string
	}
	var left, held []leaving
	settled := 0
	timer := false
	for pid, p := range b.deaf {
		verdict, name, owner, why := judgeDeaf(p, v)
		switch verdict {
		case deafWait:
			timer = timer || !v.overdue && brokerStarted(p)
			continue
		case deafHeld:
			held = append(held, leaving{deafStopping{peer: p, name: name, owner: owner}, why})
			continue
		case deafStop:
			stops = append(stops, deafStopping{peer: p, name: name, owner: owner})
		case deafStopStayedOff:
			stayedOff = append(stayedOff, deafStopping{peer: p, name: name, stayedOff: grace})
		case deafLeave:
			left = append(left, leaving{deafStopping{peer: p, name: name, owner: owner}, why})
			settled++
		case deafBack:
			settled++
		}
		delete(b.deaf, pid)
	}
	if timer {
		e.deafTimerLocked(ctx, b, due)
	}
	r := deafRestart{bus: bus, oldID: b.lastOldID, id: b.id, downtime: b.lastDowntime, since: b.since, address: b.address}
	e.mu.Unlock()
	for _, l := range left {
		// new_pid 0: it stayed off the bus, and its name has no owner.
		e.log.Info("deaf old copy left running", "bus", bus, "name", l.name, "pid", l.peer.PID, "new_pid", l.owner.PID, "why", l.why)
	}
	for _, l := range held {
		// Debug: judged again at every name change while paused.
		e.log.Debug("deaf old copy held until recovery resumes", "bus", bus, "name", l.name, "pid", l.peer.PID, "new_pid", l.owner.PID)
	}
	if len(held) > 0 {
		e.deafHeld.Add(int64(len(held)))
	}
	// Apart, so that each record's decision says why its copies went.
	if len(stops) > 0 {
		e.wg.Go(func() { e.stopDeaf(ctx, r, stops) })
	}
	if len(stayedOff) > 0 {
		e.wg.Go(func() { e.stopDeaf(ctx, r, stayedOff) })
	}
	if settled > 0 {
		e.deafSettled.Add(int64(settled))
		e.notifyChanged()
	}
}

// stopDeaf stops the deaf copies, records what was done in the history,
// and takes them off the casualty list.
func (e *Engine) stopDeaf(ctx context.Context, r deafRestart, stops []deafStopping) {
	jobs := make([]*control.Job, len(stops))
	var wg sync.WaitGroup
	for i, s := range stops {
		// In parallel: one copy that ignores SIGTERM must not hold up
		// the others for its stop timeout.
		wg.Go(func() { jobs[i] = e.stopDeafCopy(ctx, r, s) })
	}
	wg.Wait()
	rec := control.Recovery{Bus: r.bus, OldID: r.oldID, ID: r.id, Downtime: r.downtime, Started: r.since,
		Decision: "old copies of on-demand services that stayed alive but deaf, stopped once the bus started new ones"}
	if d := stops[0].stayedOff; d != 0 {
		// checkDeaf hands over the copies that stayed off on their own.
		rec.Decision = "old copies of on-demand services that dbus-broker started, stayed alive but deaf, stopped once they had stayed off the new bus for " +
			shortDuration(d)
	}
	e.mu.Lock()
	for i, j := range jobs {
		if j == nil {
			continue
		}
		rec.Jobs = append(rec.Jobs, *j)
		p := stops[i].peer
		e.casualties = slices.DeleteFunc(e.casualties, func(c control.Casualty) bool {
			return c.Bus == r.bus && c.Peer.PID == p.PID && c.Peer.StartTime == p.StartTime
		})
	}
	e.mu.Unlock()
	if len(rec.Jobs) > 0 {
		rec.Ended = time.Now()
		if err := e.hist.append(rec); err != nil {
			e.log.Warn("history not written", "err", err)
		}
	}
	e.deafSettled.Add(int64(len(stops)))
	e.notifyChanged()
}

// stopDeafCopy stops one deaf copy and returns the job to record, or nil
// when nothing was done (it had exited, or is not the process seen).
func (e *Engine) stopDeafCopy(ctx context.Context, r deafRestart, s deafStopping) *control.Job {
	p := s.peer
	started := time.Now()
	err := stopProcess(ctx, p.PID, p.StartTime, appdb.DefaultStopTimeout)
	j := &control.Job{App: deafID(p), Bus: r.bus, Action: "stop", PID: p.PID, Started: started, Took: time.Since(started)}
	switch {
	case err == nil && s.stayedOff != 0:
		j.Outcome = control.Stopped
		j.Reason = fmt.Sprintf("stopped the deaf old copy of %s (pid %d): %s", s.name, p.PID, stayedOffReason(s.stayedOff))
		e.log.Info("stopped a deaf old copy", "bus", r.bus, "name", s.name, "pid", p.PID, "unit", p.Unit, "why", stayedOffReason(s.stayedOff))
		return j
	case err == nil:
		j.Outcome = control.Stopped
		j.Reason = fmt.Sprintf("stopped the deaf old copy of %s (pid %d): %s", s.name, p.PID, replacedBy(s.owner, r.address, starterAddress))
		e.log.Info("stopped a deaf old copy", "bus", r.bus, "name", s.name, "pid", p.PID, "new_pid", s.owner.PID)
		return j
	case errors.Is(err, errGone):
		e.log.Debug("deaf old copy had exited", "bus", r.bus, "name", s.name, "pid", p.PID)
	case errors.Is(err, errNotSame), errors.Is(err, errNotOurs), errors.Is(err, errUnverifiable):
		e.log.Info("deaf old copy not stopped", "bus", r.bus, "name", s.name, "pid", p.PID, "why", whyNotSignalled(err))
	case ctx.Err() != nil:
		e.log.Info("deaf old copy not stopped", "bus", r.bus, "name", s.name, "pid", p.PID, "why", context.Cause(ctx))
	default:
		j.Outcome = control.Failed
		j.Reason = fmt.Sprintf("could not stop the deaf old copy of %s (pid %d): %v", s.name, p.PID, err)
		e.log.Warn("deaf old copy not stopped", "bus", r.bus, "name", s.name, "pid", p.PID, "err", err)
		return j
	}
	return nil
}

// stayedOffReason says why a copy dbus-broker started was stopped with no
// new copy on the bus.
func stayedOffReason(d time.Duration) string {
	return "it stayed off the new bus for " + shortDuration(d) + "; dbus-broker would fail to start a new copy while its unit runs"
}

// deafTimerLocked makes sure that bus b's possible deaf copies are judged
// again at due, when the grace of those dbus-broker started is over,
// unless the bus instance or the engine (ctx) ends first: one timer per
// bus instance, which checkDeaf sets again if a grace still runs then.
// Called with e.mu held, by a goroutine that e.wg counts or by Run's own.
func (e *Engine) deafTimerLocked(ctx context.Context, b *busState, due time.Time) {
	up := b.upCtx
	if up == nil || b.deafTimer == up {
		return
	}
	b.deafTimer = up
	e.wg.Go(func() {
		t := time.NewTimer(time.Until(due))
		defer t.Stop()
		fired := false
		select {
		case <-t.C:
			fired = true
		case <-up.Done():
		case <-ctx.Done():
		}
		e.mu.Lock()
		if b.deafTimer == up {
			b.deafTimer = nil
		}
		e.mu.Unlock()
		if fired {
			e.checkDeaf(ctx, b.name)
		}
		e.notifyChanged()
	})
}

// replacedBy says who replaced a deaf copy: the bus, when it started the
// new owner itself, else just the new owner. The process tree does not
// tell: dbus-daemon's helper that starts a service exits, and the service
// is left to init. dbus-daemon gives a service it starts the bus's address
// as DBUS_STARTER_ADDRESS (starter reads it: starterAddress);
// dbus-broker's launcher gives none, and has systemd start the service in
// a unit of its own (brokerStarted).
func replacedBy(owner watcher.Peer, busAddress string, starter func(pid int) string) string {
	switch {
	case owner.PID <= 0:
		return "its name has a new owner on the new bus"
	case busAddress != "" && watcher.WithoutGUID(starter(owner.PID)) == watcher.WithoutGUID(busAddress),
		brokerStarted(owner):
		return fmt.Sprintf("the bus started a new one (pid %d)", owner.PID)
	}
	return fmt.Sprintf("pid %d owns its name on the new bus", owner.PID)
}

// starterAddress returns the DBUS_STARTER_ADDRESS process pid was started
// with, or "": a bus sets it for the services it starts on demand.
func starterAddress(pid int) string {
	env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return ""
	}
	for kv := range strings.SplitSeq(string(env), "\x00") {
		if a, ok := strings.CutPrefix(kv, "DBUS_STARTER_ADDRESS="); ok {
			return a
		}
	}
	return ""
}

// deafID names a stopped deaf copy in the history as "deaf:PROGRAM:PID",
// in the manner of casualtyID.
func deafID(p watcher.Peer) string { return processID("deaf", p) }
