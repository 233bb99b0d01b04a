package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"busmedic/appdb"
	"busmedic/relaunch"
	"busmedic/relaunch/busrestart"
	"busmedic/relaunch/control"
	"busmedic/watcher"
)

// backend is the engine as the control socket serves it, with what the
// engine does not know added: the rules reload, restarting a bus, who is
// on the buses now, learning a rule from a casualty.
type backend struct {
	*relaunch.Engine
	store     *appdb.Store
	finder    busrestart.Finder
	intent    *relaunch.Intent
	watchers  []*watcher.Watcher
	userRules string
	// systemAddress is the system bus, restarted through systemd.
	systemAddress string
	restart       *restartProbe
	changed       chan struct{}
	// tray is what the tray child reports; nil when busmedic runs
	// without a tray.
	tray *trayHost
	// notify shows a notification a client asked for, without waiting.
	notify func(control.Notice)
	log    *slog.Logger
}

// Status is the engine's status, with how the session bus can be restarted
// (so the tray can grey out "Restart session bus" and say why before any
// click), as the probe last found out: never a call to a bus.
func (b backend) Status() control.Status {
	st := b.Engine.Status()
	st.SessionRestart, st.SessionRestartRefusal = b.restart.known(sessionUp(st))
	if r := st.SessionRestartRefusal; r != nil {
		st.SessionRestartRefused = r.Reason
	}
	if b.tray != nil {
		st.Tray = &control.TrayStatus{Show: b.store.Current().Settings().Tray, Host: b.tray.current()}
	}
	return st
}

// ReportTray takes the tray child's report on its icon's host, which the
// status then carries.
func (b backend) ReportTray(h control.TrayHost) {
	if b.tray != nil {
		b.tray.report(h)
	}
}

// Notify shows a client's notification (the tray's word on a failed
// click) as busmedic's own, and returns without waiting for it.
func (b backend) Notify(n control.Notice) error {
	b.notify(n)
	return nil
}

// Changed gets a value when the engine's status changed, or what the
// probe knows.
func (b backend) Changed() <-chan struct{} { return b.changed }

func (b backend) Reload() error { return b.store.Reload().Err }

// How long a restart asked for by a client may take. The request's
// context ends with the daemon only, not with the client: a bus or a
// manager that accepts and never answers would otherwise hold the request
// (and its client slot) for good. The system bus's restart waits for the
// user to answer polkit, as long as a client waits for an answer
// (busmedic restart-bus waits two minutes).
const (
	sessionRestartTimeout = 30 * time.Second
	systemRestartTimeout  = 2 * time.Minute
)

// RestartBus restarts the session bus the way it was started, or the
// system bus through systemd with the user's authorisation.
func (b backend) RestartBus(ctx context.Context, bus string) error {
	switch bus {
	case "system":
		// polkit asks the user; the request's context waits for the answer.
		b.log.Info("restarting the system bus on request", "how", "systemd, with the user's authorisation")
		ctx, cancel := context.WithTimeoutCause(ctx, systemRestartTimeout,
			fmt.Errorf("the system bus's restart did not end within %s", systemRestartTimeout))
		defer cancel()
		return withdrawOnError(b.intent.Ordered(bus), busrestart.SystemRestart(ctx, b.systemAddress))
	case "session":
	default:
		return fmt.Errorf("no bus %q (want session or system)", bus)
	}
	fctx, cancel := context.WithTimeoutCause(ctx, findTimeout,
		fmt.Errorf("could not find out within %s how the session bus was started (the bus or the user manager does not answer)", findTimeout))
	m, err := b.finder.Find(fctx)
	cancel()
	if err != nil {
		return err
	}
	b.log.Info("restarting the session bus on request", "how", m.String())
	ctx, cancel = context.WithTimeoutCause(ctx, sessionRestartTimeout,
		fmt.Errorf("the session bus's restart (%s) did not end within %s", m, sessionRestartTimeout))
	defer cancel()
	return withdrawOnError(b.intent.Ordered(bus), m.Restart(ctx))
}

// withdrawOnError takes back the order of a restart that failed.
func withdrawOnError(withdraw func(), err error) error {
	if err != nil {
		withdraw()
	}
	return err
}

// Peers returns who is on each bus now.
func (b backend) Peers() map[string][]watcher.Peer {
	peers := map[string][]watcher.Peer{}
	for _, w := range b.watchers {
		peers[w.Target().Name] = w.Peers()
	}
	return peers
}

// DryRun plans a recovery for bus as if it restarted now, with who is on
// it now.
func (b backend) DryRun(bus string) ([]control.PlannedJob, error) {
	for _, w := range b.watchers {
		if w.Target().Name == bus {
			return b.Plan(bus, w.Peers()), nil
		}
	}
	return nil, fmt.Errorf("no bus %q (want session or system)", bus)
}

// Learn adds a rule for a casualty to the user's rules file ("Always
// relaunch"), through appdb's atomic save, and reloads the rules.
func (b backend) Learn(casualty string) (string, error) {
	var found *control.Casualty
	for _, c := range b.Status().Casualties {
		if c.ID == casualty {
			found = &c
		}
	}
	if found == nil {
		return "", fmt.Errorf("no casualty %q (see busmedic status)", casualty)
	}
	f, err := appdb.OpenFile(b.userRules)
	if err != nil {
		return "", err
	}
	rule := ruleForCasualty(*found)
	rule.ID = freeRuleID(rule.ID, func(id string) bool {
		_, taken := f.Lookup(id)
		return taken
	})
	if err := f.AddOrReplace(rule); err != nil {
		return "", err
	}
	if err := f.Save(); err != nil {
		return "", err
	}
	b.log.Info("rule added for a casualty", "rule", rule.ID, "file", b.userRules)
	return rule.ID, b.Reload()
}

// ruleForCasualty is the rule "Always relaunch" makes of c: the app on
// the bus it fell off. A system-bus casualty's unit is a system service,
// which the user manager that a rule's unit names cannot start.
func ruleForCasualty(c control.Casualty) appdb.Rule {
	r := appdb.FromPeer(c.Peer)
	if c.Bus == string(appdb.BusSystem) {
		r.Bus, r.Unit = appdb.BusSystem, ""
	}
	return r
}

// freeRuleID is base, or the first of base-2, base-3… that taken does
// not report taken: a rule learnt from a casualty never replaces another.
func freeRuleID(base string, taken func(id string) bool) string {
	id := base
	for n := 2; taken(id); n++ {
		id = fmt.Sprintf("%s-%d", base, n)
	}
	return id
}
