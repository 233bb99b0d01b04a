package relaunch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"

	"busmedic/appdb"
	"busmedic/relaunch/control"
	"busmedic/usermanager"
	"busmedic/watcher"
)

// Apps in systemd user services are brought back through the user
// manager, never by starting their command from busmedic: a process
// busmedic starts runs outside the unit (in a scope of its own at best),
// with busmedic's environment, and the unit's Restart= may bring the app
// back at the same time, which would make two. So the engine reads the unit's
// state first and lets decideUnit say what to do; see relaunchUnit.

// jobUnit returns the user service a relaunch of the app goes through: the
// rule's unit, else the one its first process in a service ran in. Never
// own (busmedic's unit as the daemon found it) nor one of busmedic's
// well-known units: apps busmedic started itself run there when their
// scope could not be made (scope.go), and restarting it would restart
// busmedic.
func jobUnit(r appdb.Rule, peers []watcher.Peer, own string) string {
	usable := func(u string) bool { return u != "" && u != own && !appdb.IsBusmedicUnit(u) }
	if r.Unit != "" {
		if usable(r.Unit) {
			return r.Unit
		}
		return ""
	}
	for _, p := range peers {
		if usable(p.Unit) {
			return p.Unit
		}
	}
	return ""
}

// unitState is what the user manager says of a service.
type unitState struct {
	LoadState   string // "loaded", "not-found", "masked", "error", "bad-setting"
	ActiveState string // "active", "activating", "deactivating", "inactive", "failed", …
	SubState    string // "running", "auto-restart", "dead", "failed", …
	Type        string // "simple", "exec", "dbus", "notify", "forking", "oneshot"
	Restart     string // "no", "on-failure", "always", …
	Result      string // "success", "exit-code", "signal", …
	NRestarts   uint32
	MainPID     int
	// MainStart is when the current (or last) main process started
	// (ExecMainStartTimestamp); zero if none ever did.
	MainStart time.Time
	// RestartDelay is RestartSec; StopTimeout is TimeoutStopSec.
	RestartDelay, StopTimeout time.Duration
	// mainGone is busmedic's own look: MainPID has exited, and the
	// manager has not yet taken note (it reaps its children a moment
	// after they exit).
	mainGone bool
}

// unitMove is what to do about a unit, as decideUnit says.
type unitMove int

const (
	// unitWait: the unit is in transition (starting, stopping, waiting
	// for its Restart=): look again shortly.
	unitWait unitMove = iota + 1
	// unitBack: it runs a process started since the moment that counts
	// (the bus went down): wait for the app to be ready, start nothing.
	unitBack
	// unitStart: it is failed or inactive: StartUnit.
	unitStart
	// unitRestart: it is active with a process from before: RestartUnit,
	// and systemd ends the stale process.
	unitRestart
	// unitGone: the manager does not know it (a transient unit that is
	// gone): only its command can start the app.
	unitGone
	// unitRefused: it cannot be started (masked, or its file is broken).
	unitRefused
)

// decideUnit says what to do about a unit in state st so that the app
// runs a process started after since, without starting it twice: a unit
// systemd is bringing back by itself is waited for.
func decideUnit(st unitState, since time.Time) unitMove {
	switch st.LoadState {
	case "loaded":
	case "not-found":
		return unitGone
	default:
		return unitRefused
	}
	switch st.ActiveState {
	case "active", "reloading", "refreshing":
		switch {
		case st.mainGone:
			// About to change: Restart= may bring it back, and a
			// restart now would be taken for busmedic's.
			return unitWait
		case !st.MainStart.IsZero() && !st.MainStart.Before(since):
			return unitBack
		}
		return unitRestart
	case "failed", "inactive":
		return unitStart
	}
	// activating (among them auto-restart: Restart= brings it back after
	// RestartSec), deactivating (it may be restarted once stopped), and
	// whatever later versions add.
	return unitWait
}

// describeUnit says, for the job's reason, what state the unit was found in
// before busmedic started it.
func describeUnit(st unitState) string {
	switch {
	case st.ActiveState == "failed":
		return "it had failed (" + st.Result + ")"
	case st.ActiveState == "inactive" && st.Type == "dbus":
		// Measured: systemd stops a Type=dbus unit whose BusName
		// vanishes, with result success, even if its process never used
		// the bus.
		return "it was stopped: systemd stops a Type=dbus unit whose bus name vanishes"
	}
	return "it was " + st.ActiveState
}

// cameBack says how a unit came back without busmedic.
func cameBack(unit string, st unitState, sawRestart bool) string {
	if sawRestart || (st.Restart != "no" && st.Restart != "" && st.NRestarts > 0) {
		return fmt.Sprintf("unit %s restarted itself (Restart=%s)", unit, st.Restart)
	}
	return fmt.Sprintf("unit %s was started again by systemd", unit)
}

// unitManager is the part of the user manager the engine uses; tests stand
// in for it, since no systemd runs in unit tests.
type unitManager interface {
	// state reads a service's state.
	state(ctx context.Context, unit string) (unitState, error)
	// run starts (or, with restart, restarts) a unit with job mode
	// "replace" and waits for the job's result: "done", "canceled",
	// "timeout", "failed", "dependency" or "skipped".
	run(ctx context.Context, unit string, restart bool) (string, error)
	// scope puts the running process pid into the new transient scope
	// name, in app.slice, and waits for the job's result (scope.go).
	scope(ctx context.Context, name string, pid int, description string) (string, error)
	close()
}

// userManager returns the connection to the user manager that all jobs
// share, dialing it at first use. One connection, not one per job: a dial
// is two connections (go-systemd keeps one for signals) and their
// handshakes, which the single-threaded manager answers before it runs
// the jobs already queued, so that a dial per job delayed every start.
//
// No lock is held across the dial: a caller that finds a dial under way
// waits for it within its own ctx (a scope's wait is a second, a job's
// as long as the job), and dials itself if that one failed. A dial is
// bounded by userManagerDialTimeout as well as by its caller's ctx.
func (e *Engine) userManager(ctx context.Context) (unitManager, error) {
	for {
		e.unitsMu.Lock()
		if m := e.units; m != nil {
			e.unitsMu.Unlock()
			return m, nil
		}
		if dialing := e.unitsDialing; dialing != nil {
			e.unitsMu.Unlock()
			select {
			case <-dialing:
				continue
			case <-ctx.Done():
				return nil, context.Cause(ctx)
			}
		}
		dialing := make(chan struct{})
		e.unitsDialing = dialing
		e.unitsMu.Unlock()

		dctx, cancel := context.WithTimeoutCause(ctx, userManagerDialTimeout,
			fmt.Errorf("the user manager did not answer within %s", userManagerDialTimeout))
		m, err := e.cfg.dialUnits(dctx, e.cfg.UserManager)
		cancel()
		e.unitsMu.Lock()
		e.unitsDialing = nil
		if err == nil {
			e.units = m
		}
		e.unitsMu.Unlock()
		close(dialing)
		return m, err
	}
}

// userManagerDialTimeout bounds a dial of the user manager: the connects,
// the handshakes and go-systemd's first call, which take milliseconds on a
// manager that is not stuck.
const userManagerDialTimeout = 5 * time.Second

// dropUserManager closes m, if it is still the shared connection, so that
// the next job dials anew.
func (e *Engine) dropUserManager(m unitManager) {
	e.unitsMu.Lock()
	defer e.unitsMu.Unlock()
	if e.units == m {
		e.units = nil
		m.close()
	}
}

// dialUserManager reaches the user manager at socket.
func dialUserManager(ctx context.Context, socket string) (unitManager, error) {
	conn, err := usermanager.Dial(ctx, socket)
	if err != nil {
		return nil, err
	}
	return systemdUnits{conn}, nil
}

// systemdUnits is the user manager over go-systemd.
type systemdUnits struct{ conn *sdbus.Conn }

func (s systemdUnits) close() { s.conn.Close() }

func (s systemdUnits) state(ctx context.Context, unit string) (unitState, error) {
	// The states in one call, then property by property only what the
	// state calls for, not GetAll: the manager's GetAll of a service reads
	// its cgroup's counters (memory, CPU, IO) from the kernel, a few
	// milliseconds each time, while the few properties here are in its
	// memory, and the manager answers all this before it runs the jobs
	// queued.
	var st unitState
	var err error
	get := func(name string) any {
		if err != nil {
			return nil
		}
		var p *sdbus.Property
		p, err = s.conn.GetServicePropertyContext(ctx, unit, name)
		if err != nil {
			err = fmt.Errorf("read %s of unit %s: %w", name, unit, err)
			return nil
		}
		return p.Value.Value()
	}
	units, err := s.conn.ListUnitsByNamesContext(ctx, []string{unit})
	if err != nil {
		return st, fmt.Errorf("read unit %s: %w", unit, err)
	}
	if len(units) != 1 {
		return st, fmt.Errorf("read unit %s: the manager listed %d units", unit, len(units))
	}
	st.LoadState, st.ActiveState, st.SubState = units[0].LoadState, units[0].ActiveState, units[0].SubState
	if st.LoadState != "loaded" {
		return st, nil
	}
	st.Type, _ = get("Type").(string)
	st.Result, _ = get("Result").(string)
	pid, _ := get("MainPID").(uint32)
	st.MainPID = int(pid)
	if st.ActiveState == "failed" || st.ActiveState == "inactive" {
		// All decideUnit and describeUnit need of a unit to start.
		return st, err
	}
	st.Restart, _ = get("Restart").(string)
	st.NRestarts, _ = get("NRestarts").(uint32)
	if us, _ := get("ExecMainStartTimestamp").(uint64); us > 0 {
		st.MainStart = time.UnixMicro(int64(us))
	}
	restartSec, _ := get("RestartUSec").(uint64)
	stopTimeout, _ := get("TimeoutStopUSec").(uint64)
	st.RestartDelay, st.StopTimeout = usec(restartSec), usec(stopTimeout)
	if err != nil {
		return unitState{}, err
	}
	return st, nil
}

// usec converts a systemd time span; "infinity" (the largest value) is a
// day, which bounds no wait that matters here.
func usec(us uint64) time.Duration {
	if us > uint64(24*time.Hour/time.Microsecond) {
		return 24 * time.Hour
	}
	return time.Duration(us) * time.Microsecond
}

func (s systemdUnits) run(ctx context.Context, unit string, restart bool) (string, error) {
	// Buffered: go-systemd sends the result while it holds its own lock.
	ch := make(chan string, 1)
	var err error
	if restart {
		_, err = s.conn.RestartUnitContext(ctx, unit, "replace", ch)
	} else {
		_, err = s.conn.StartUnitContext(ctx, unit, "replace", ch)
	}
	if err != nil {
		return "", err
	}
	select {
	case res := <-ch:
		return res, nil
	case <-ctx.Done():
		return "", context.Cause(ctx)
	}
}

func (s systemdUnits) scope(ctx context.Context, name string, pid int, description string) (string, error) {
	return usermanager.StartScope(ctx, s.conn, name, pid, description)
}

// unitPoll is how often the state of a unit in transition is read again.
// Following the manager's PropertiesChanged signals instead would save at
// most this much on a unit that takes RestartSec (100 ms by default) and
// its start to come back, and reading is a few calls on a local socket.
const unitPoll = 100 * time.Millisecond

// maxUnitJobs bounds the jobs one relaunch runs, and the fresh processes
// it sees end before the app was ready: a job that systemd cancels (it
// stops a Type=dbus unit whose name vanished while busmedic restarts it)
// is followed by another look, but not for ever.
const maxUnitJobs = 3

// relaunchUnit brings back an app that runs in the user service pj.Unit,
// through the user manager: it waits for a unit systemd is bringing back
// by itself, starts a failed or stopped one and restarts one whose process
// stayed off the bus; then it waits for the app as a relaunch does. It
// sends no signal: systemd ends a stale process. Without the manager it
// starts the rule's exec, if the rule has one.
func (e *Engine) relaunchUnit(ctx context.Context, bus string, jr *jobRun) result {
	pj := jr.plan
	r, unit := pj.Rule, pj.Unit
	m, err := e.userManager(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return result{outcome: control.Cancelled, reason: context.Cause(ctx).Error()}
		}
		if len(r.Exec) == 0 {
			return result{outcome: control.Failed, reason: fmt.Sprintf(
				"cannot start unit %s: %v; the rule has no exec to start the app otherwise", unit, err)}
		}
		e.log.Warn("no user manager: starting the rule's exec", "app", pj.App, "unit", unit, "err", err)
		res := e.relaunchExec(ctx, bus, jr)
		res.reason = joinReasons(fmt.Sprintf("started the rule's exec, not unit %s: %v", unit, err), res.reason)
		return res
	}

	deadline := time.Now().Add(r.ReadyTimeout)
	var (
		acted      string // what busmedic had systemd do, once it has
		sawRestart bool   // the unit was seen waiting for its Restart=
		extended   bool   // the deadline was extended by that wait
		jobs       int
		exits      int // fresh main processes that ended before the app was ready
		looked     bool
	)
	for {
		if ctx.Err() != nil {
			return result{outcome: control.Cancelled, reason: context.Cause(ctx).Error()}
		}
		st, err := m.state(ctx, unit)
		if err != nil && ctx.Err() == nil {
			// The connection may have gone stale (the manager was
			// re-executed): one more try on a new one.
			e.dropUserManager(m)
			if m, err = e.userManager(ctx); err == nil {
				st, err = m.state(ctx, unit)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return result{outcome: control.Cancelled, reason: context.Cause(ctx).Error()}
			}
			return result{outcome: control.Failed, reason: err.Error()}
		}
		st.mainGone = st.MainPID > 0 && !alive(st.MainPID, 0)
		if !looked {
			looked = true
			// Processes of the app outside the unit (started by hand,
			// or by busmedic before the rule named the unit) are
			// stopped as a relaunch stops them; the unit's own are
			// systemd's to end.
			if res, ok := e.stopLeftovers(ctx, bus, pj, func(p watcher.Peer) bool {
				return p.StartTime != 0 && p.Unit != unit && p.PID != st.MainPID
			}); !ok {
				return res
			}
		}
		move := decideUnit(st, jr.since)
		e.log.Debug("unit state", "app", pj.App, "unit", unit, "active", st.ActiveState, "sub", st.SubState,
			"main_pid", st.MainPID, "restarts", st.NRestarts, "move", move)
		if acted != "" && (move == unitStart || move == unitRestart) {
			// It ended again after the job that started it was done.
			return result{outcome: control.Failed, reason: fmt.Sprintf("%s, but it ended again (%s)%s",
				acted, strings.TrimPrefix(describeUnit(st), "it "), journalHint(unit))}
		}
		switch move {
		case unitGone:
			if len(pj.Command) == 0 {
				return result{outcome: control.Failed, reason: fmt.Sprintf("unit %s is %s, and the app's command is unknown", unit, st.LoadState)}
			}
			res := e.relaunchExec(ctx, bus, jr)
			res.reason = joinReasons(fmt.Sprintf("unit %s is %s: started the app's command instead", unit, st.LoadState), res.reason)
			return res
		case unitRefused:
			return result{outcome: control.Failed, reason: fmt.Sprintf("unit %s cannot be started: it is %s", unit, st.LoadState)}
		case unitWait:
			if st.SubState == "auto-restart" {
				sawRestart = true
				if !extended {
					// RestartSec may be longer than ready_timeout.
					extended = true
					deadline = later(deadline, time.Now().Add(st.RestartDelay+r.ReadyTimeout))
				}
			}
			if time.Now().After(deadline) {
				return result{outcome: control.Failed, reason: fmt.Sprintf("unit %s is still %s (%s): systemd did not bring it back in time%s",
					unit, st.ActiveState, st.SubState, journalHint(unit))}
			}
			t := time.NewTimer(unitPoll)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
			}
		case unitBack:
			ok, why := control.Reconnected, cameBack(unit, st, sawRestart)
			if acted != "" {
				ok, why = control.Relaunched, acted
			}
			res, exited := e.readyUnit(ctx, bus, jr, m, st, ok, why)
			if exited && exits < maxUnitJobs && res.outcome == control.Failed {
				// Its new process ended (it may have started while the
				// bus was still down): see what systemd does now.
				exits++
				continue
			}
			return res
		case unitStart, unitRestart:
			if jobs == maxUnitJobs {
				return result{outcome: control.Failed, reason: fmt.Sprintf("systemd cancelled %d jobs for unit %s", jobs, unit)}
			}
			jobs++
			restart := move == unitRestart
			verb, timeout := "started", r.ReadyTimeout
			if restart {
				verb, timeout = "restarted", st.StopTimeout+r.ReadyTimeout
			}
			jctx, cancel := context.WithTimeoutCause(ctx, timeout, fmt.Errorf("systemd did not finish the job within %s", shortDuration(timeout)))
			res, err := m.run(jctx, unit, restart)
			cancel()
			e.log.Info("unit job", "app", pj.App, "unit", unit, "job", verb, "result", res, "err", err)
			switch {
			case ctx.Err() != nil:
				return result{outcome: control.Cancelled, reason: context.Cause(ctx).Error()}
			case err != nil:
				return result{outcome: control.Failed, reason: fmt.Sprintf("%s unit %s: %v", strings.TrimSuffix(verb, "ed"), unit, err)}
			case res == "canceled":
				// Another job replaced ours: systemd's own (it stops a
				// Type=dbus unit whose name vanished). Look again.
				continue
			case res != "done":
				return result{outcome: control.Failed, reason: fmt.Sprintf("systemd could not %s unit %s: the job ended %q%s",
					strings.TrimSuffix(verb, "ed"), unit, res, journalHint(unit))}
			}
			// A unit that fails at once may wait for its Restart= now:
			// that wait gets the same time as the first.
			deadline, extended = time.Now().Add(r.ReadyTimeout), false
			if restart {
				acted = fmt.Sprintf("restarted unit %s through systemd (pid %d had run since before %s)", unit, st.MainPID, jr.sinceWhat)
				if st.MainPID == 0 {
					acted = fmt.Sprintf("restarted unit %s through systemd (it had run since before %s)", unit, jr.sinceWhat)
				}
			} else {
				acted = fmt.Sprintf("started unit %s through systemd (%s)", unit, describeUnit(st))
			}
		}
	}
}

// readyUnit waits for an app whose unit runs a fresh process, as ready
// waits for a started one: for its names, or its main process on the bus
// or alive. exited reports a failure because the main process exited; the
// reason then has the unit's state.
func (e *Engine) readyUnit(ctx context.Context, bus string, jr *jobRun, m unitManager, st unitState, ok control.Outcome, why string) (res result, exited bool) {
	unit := jr.plan.Unit
	c, stop := followMain(ctx, jr.plan.App, st.MainPID)
	res = e.ready(ctx, bus, jr, c, ok)
	stop()
	switch {
	case res.outcome == ok:
		res.reason = joinReasons(why, res.reason)
	case res.outcome == control.Failed && c != nil && isClosed(c.exited):
		exited = true
		what := ""
		if now, err := m.state(ctx, unit); err == nil && now.ActiveState != "" {
			what = fmt.Sprintf(" (unit %s, %s)", now.ActiveState, now.Result)
		}
		res.reason = fmt.Sprintf("%s, but its main process (pid %d) exited%s%s", why, c.pid, what, journalHint(unit))
	case res.outcome == control.Failed:
		res.reason = why + ", but " + res.reason
	}
	return res, exited
}

// followMain returns a child standing for the unit's main process pid, so
// that ready waits on it as on a process busmedic started, and a function
// that stops following it. It returns a nil child when there is no main
// process to follow (pid 0, or one that cannot be verified).
func followMain(ctx context.Context, app string, pid int) (*child, func()) {
	if pid <= 0 {
		return nil, func() {}
	}
	start, _, err := procStat(pid)
	if err == nil {
		var p *process
		if p, err = openProcess(pid, start); err == nil {
			c := &child{app: app, pid: pid, start: start, exited: make(chan struct{})}
			wctx, cancel := context.WithCancel(ctx)
			done := make(chan struct{})
			go func() {
				defer close(done)
				defer p.close()
				for !p.wait(wctx, time.Minute) {
					if wctx.Err() != nil {
						return
					}
				}
				close(c.exited)
			}()
			return c, func() { cancel(); <-done }
		}
	}
	if errors.Is(err, errGone) || errors.Is(err, errNotSame) {
		// Ended already, between the manager's answer and now.
		c := &child{app: app, pid: pid, exited: make(chan struct{})}
		close(c.exited)
		return c, func() {}
	}
	return nil, func() {}
}

func journalHint(unit string) string { return "; see journalctl --user -u " + unit }

// joinReasons joins the parts of a reason that are not empty.
func joinReasons(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, "; ")
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
