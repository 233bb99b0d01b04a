package busrestart

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"busmedic/appdb"
	"busmedic/journallog"
	"busmedic/relaunch"
	"busmedic/relaunch/control"
	"busmedic/watcher"
)

// The values of restart_after_update.
const (
	Ask      = "ask"
	WhenIdle = "when-idle"
	Never    = "never"
)

// ActionRestart is the key of the notification's "Restart now" action.
const ActionRestart = "restart"

// Notifier shows a desktop notification with actions (key, label pairs)
// and returns the key the user chose, or "" if the notification was closed.
// relaunch.DesktopNotifier is one.
type Notifier interface {
	Notify(ctx context.Context, title, body string, actions []string) (string, error)
}

// Policy applies restart_after_update when a watcher reports a bus daemon
// Outdated: "ask" notifies with a "Restart now" action, "when-idle" restarts
// once the session has been idle for idle_minutes, "never" does nothing.
// Feed it the watchers' events with Run.
//
// At most one decision per bus is pending: further Outdated events of the
// bus wait for it. A Down of the bus drops the pending decision (the
// outdated daemon is gone, whoever stopped it); a restart already started
// goes on. Under "ask", a session bus that goes away while the question
// waits (for a notification server or for the user) takes the
// notification with it: the question is asked again at the session bus's
// next Up.
type Policy struct {
	// Settings gives restart_after_update and idle_minutes, read at each
	// Outdated; nil means appdb's defaults.
	Settings func() appdb.Settings
	// Notifier asks the user under "ask"; without one, "ask" only logs.
	Notifier Notifier
	// Ordered is called just before busmedic restarts bus, so that the
	// recovery that follows knows the restart was ours; the function it
	// returns is called if the restart fails.
	Ordered func(bus string) (withdraw func())
	// Restart restarts a bus ("session" or "system"); nil means the
	// session bus through Finder and the system bus through SystemRestart
	// at SystemAddress. Ordered is called before it either way.
	Restart func(ctx context.Context, bus string) error
	// Finder finds how to restart the session bus.
	Finder Finder
	// SessionAddress and SystemAddress return the buses' addresses: the
	// idle time is asked there, and the system bus restarted there.
	SessionAddress func() string
	SystemAddress  func() string
	// IdleAfter, if positive, replaces idle_minutes; for tests.
	IdleAfter time.Duration
	// Decided, if set, is called when a decision about a bus ends, with
	// its outcome (one of the Outcome constants) and, for OutcomeFailed,
	// the error; the daemon may show a failure to the user.
	Decided func(bus, outcome string, err error)
	Log     *slog.Logger

	mu sync.Mutex
	// restartedAt is when the policy restarted each bus, until ReportFor
	// takes it.
	restartedAt map[string]time.Time
}

// reportWithin bounds how long after the policy's restart a recovery is
// taken to be the one that followed it.
const reportWithin = 10 * time.Minute

// ReportFor returns the UpdateReport of rec if rec is the recovery that
// followed a restart this policy made to finish an update, once: the
// daemon shows it as one notification when the recovery has ended.
func (p *Policy) ReportFor(rec control.Recovery) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	at, ok := p.restartedAt[rec.Bus]
	if !ok || rec.Started.Before(at) || rec.Started.Sub(at) > reportWithin {
		return "", false
	}
	delete(p.restartedAt, rec.Bus)
	return UpdateReport(rec), true
}

// The outcomes of a decision, as given to Policy.Decided.
const (
	OutcomeRestarted = "restarted"
	OutcomeDeclined  = "declined"  // "ask": the notification closed without "Restart now"
	OutcomeNever     = "never"     // restart_after_update = never
	OutcomeCancelled = "cancelled" // the bus went down, or busmedic is stopping
	OutcomeFailed    = "failed"    // asking, waiting or restarting failed
)

// pending is one bus's decision in progress.
type pending struct {
	bus    string
	cancel context.CancelFunc
	// sessionUp gets a value at each Up of the session bus, for a
	// question to ask again after the session bus was lost.
	sessionUp chan struct{}
}

// Run applies the policy to events until ctx is done or events is closed,
// then waits for the decisions in progress to end.
func (p *Policy) Run(ctx context.Context, events <-chan watcher.Event) {
	if p.Log == nil {
		p.Log = slog.Default()
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	busy := map[string]*pending{}
	done := make(chan *pending)
	for {
		select {
		case <-ctx.Done():
			return
		case d := <-done:
			if busy[d.bus] == d {
				delete(busy, d.bus)
			}
		case ev, ok := <-events:
			if !ok {
				return
			}
			switch ev.Kind {
			case watcher.Outdated:
				if busy[ev.Bus] != nil {
					continue
				}
				wctx, wcancel := context.WithCancel(ctx)
				d := &pending{bus: ev.Bus, cancel: wcancel, sessionUp: make(chan struct{}, 1)}
				busy[ev.Bus] = d
				wg.Go(func() {
					defer wcancel()
					outcome, err := p.decide(ctx, wctx, ev, d.sessionUp)
					if err != nil {
						p.Log.Warn("restart after update", "bus", ev.Bus, "outcome", outcome, "err", err)
					} else {
						p.Log.Debug("restart after update decided", "bus", ev.Bus, "outcome", outcome)
					}
					if p.Decided != nil {
						p.Decided(ev.Bus, outcome, err)
					}
					select {
					case done <- d:
					case <-ctx.Done():
					}
				})
			case watcher.Down:
				if d := busy[ev.Bus]; d != nil {
					d.cancel()
				}
			case watcher.Up:
				if ev.Bus != "session" {
					continue
				}
				for _, d := range busy {
					select {
					case d.sessionUp <- struct{}{}:
					default: // one is enough: it only wakes the asker
					}
				}
			}
		}
	}
}

// mode returns restart_after_update for bus and the idle time wanted.
func (p *Policy) mode(bus string) (string, time.Duration) {
	s := appdb.DefaultSettings()
	if p.Settings != nil {
		s = p.Settings()
	}
	mode := strings.ToLower(strings.TrimSpace(s.RestartAfterUpdateFor(bus)))
	if mode == "" {
		mode = Ask
	}
	idle := time.Duration(s.IdleMinutes) * time.Minute
	if idle <= 0 {
		idle = time.Duration(appdb.DefaultSettings().IdleMinutes) * time.Minute
	}
	if p.IdleAfter > 0 {
		idle = p.IdleAfter
	}
	return mode, idle
}

// decide waits under wctx for the policy's moment, then restarts under ctx,
// so that the bus going down during the restart does not cut it short.
// sessionUp gets a value at each Up of the session bus.
func (p *Policy) decide(ctx, wctx context.Context, ev watcher.Event, sessionUp <-chan struct{}) (outcome string, err error) {
	mode, idle := p.mode(ev.Bus)
	log := p.Log.With("bus", ev.Bus, "restart_after_update", mode)
	log.Info("bus daemon outdated", journallog.EventKey, journallog.UpdateWaits, "why", ev.Reason)
	// cut tells a wait that ended because the bus went down or busmedic is
	// stopping from one that failed.
	cut := func(err error) (string, error) {
		if wctx.Err() != nil {
			return OutcomeCancelled, nil
		}
		return OutcomeFailed, err
	}
	switch mode {
	case Never:
		return OutcomeNever, nil
	case Ask:
		if p.Notifier == nil {
			return OutcomeFailed, errors.New("no notifier to ask whether to restart the bus")
		}
		chosen, err := p.ask(wctx, ev, sessionUp, log)
		if err != nil {
			return cut(fmt.Errorf("ask whether to restart the %s bus: %w", ev.Bus, err))
		}
		if chosen != ActionRestart {
			log.Info("restart after update declined")
			return OutcomeDeclined, nil
		}
	case WhenIdle:
		if err := p.awaitIdle(wctx, idle, log); err != nil {
			return cut(err)
		}
	default:
		return OutcomeFailed, fmt.Errorf("unknown restart_after_update %q", mode)
	}
	if wctx.Err() != nil {
		return OutcomeCancelled, nil // the bus went down meanwhile: nothing outdated to restart
	}
	start := time.Now()
	p.mu.Lock()
	if p.restartedAt == nil {
		p.restartedAt = map[string]time.Time{}
	}
	p.restartedAt[ev.Bus] = start
	p.mu.Unlock()
	if err := p.restart(ctx, ev.Bus); err != nil {
		p.mu.Lock()
		delete(p.restartedAt, ev.Bus)
		p.mu.Unlock()
		log.Error("restart after update failed", "err", err)
		return OutcomeFailed, fmt.Errorf("restart the %s bus after the update: %w", ev.Bus, err)
	}
	log.Info("bus restarted after update", "took", time.Since(start))
	return OutcomeRestarted, nil
}

// ask asks the user whether to restart ev's bus, and returns the key of
// the action chosen. A question that the session bus took with it when it
// went away (or that could not reach it) is asked again at the session
// bus's next Up, on the new bus, until ctx ends: the bus to restart still
// runs the old code.
func (p *Policy) ask(ctx context.Context, ev watcher.Event, sessionUp <-chan struct{}, log *slog.Logger) (string, error) {
	title, body := AskText(ev.Bus, ev.Reason)
	for {
		// An Up from before this question is not the bus coming back.
		select {
		case <-sessionUp:
		default:
		}
		chosen, err := relaunch.ShowNotice(ctx, p.Notifier, relaunch.Notice{Title: title, Body: body, Actions: []relaunch.Action{{Key: ActionRestart, Label: "Restart now", Command: "busmedic restart-bus " + ev.Bus}}})
		if err == nil || ctx.Err() != nil ||
			!errors.Is(err, relaunch.ErrSessionBusLost) && !errors.Is(err, relaunch.ErrNoSessionBus) {
			return chosen, err
		}
		log.Info("the question went with the session bus; asking again once the session bus is back", "err", err)
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-sessionUp:
		}
	}
}

func (p *Policy) address(f func() string) string {
	if f == nil {
		return ""
	}
	return f()
}

// restart restarts bus the way that fits it, telling Ordered first, and
// withdrawing the order if it fails.
func (p *Policy) restart(ctx context.Context, bus string) (err error) {
	withdraw := func() {}
	order := func() {
		if p.Ordered != nil {
			withdraw = p.Ordered(bus)
		}
	}
	defer func() {
		if err != nil {
			withdraw() // the restart failed: no recovery is expected
		}
	}()
	if p.Restart != nil {
		order()
		return p.Restart(ctx, bus)
	}
	switch bus {
	case "session":
		m, err := p.Finder.Find(ctx)
		if err != nil {
			return err
		}
		order()
		return m.Restart(ctx)
	case "system":
		addr := p.address(p.SystemAddress)
		if addr == "" {
			return errors.New("restart the system bus: address unknown")
		}
		order()
		return SystemRestart(ctx, addr)
	}
	return &control.RestartRefusal{Bus: bus, Reason: fmt.Sprintf("no restart method for bus %q", bus)}
}

// AskText is the notification that asks to restart an outdated bus.
func AskText(bus, why string) (title, body string) {
	title = "D-Bus update installed"
	body = fmt.Sprintf("The %s bus still runs the old D-Bus (%s). Restart it to finish the update; busmedic brings your apps back.", bus, why)
	if bus == "system" {
		body += " Restarting the system bus asks for the administrator's password."
	}
	return title, body
}

// idleRetries and idleRetryWait bound how often a wait for idleness opens
// its source again after the source failed: logind restarts on a systemd
// update, often in the same upgrade as dbus.
const (
	idleRetries   = 3
	idleRetryWait = 2 * time.Second
)

// awaitIdle returns once the session has been idle for idle.
func (p *Policy) awaitIdle(ctx context.Context, idle time.Duration, log *slog.Logger) error {
	var lastErr error
	announced := false
	for attempt := 0; attempt <= idleRetries; attempt++ {
		if attempt > 0 {
			log.Info("idle source failed; asking again", "err", lastErr, "in", idleRetryWait)
			t := time.NewTimer(idleRetryWait)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		src, err := openIdle(ctx, p.address(p.SessionAddress), p.address(p.SystemAddress))
		if err != nil {
			// Even the first: logind may be restarting in this very
			// upgrade.
			lastErr = fmt.Errorf("cannot tell when the session is idle: %w", err)
			continue
		}
		if !announced {
			log.Info("restarting once the session is idle", "idle", idle, "source", src.name)
			announced = true
		}
		err = waitIdle(ctx, src, idle)
		src.close()
		if err == nil || ctx.Err() != nil {
			return err
		}
		lastErr = fmt.Errorf("wait for the session to be idle: %w", err)
	}
	return lastErr
}
