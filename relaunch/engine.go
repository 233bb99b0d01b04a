package relaunch

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"busmedic/appdb"
	"busmedic/relaunch/control"
	"busmedic/watcher"
)

// Config is what the engine needs from the daemon around it.
type Config struct {
	// Rules returns the rules in force (appdb.Store.Current).
	Rules func() *appdb.Set
	// Env returns the base environment of started apps; default os.Environ.
	Env func() []string
	// Addresses returns the current address of "session" or "system"
	// (without guid=), put in DBUS_SESSION_BUS_ADDRESS and
	// DBUS_SYSTEM_BUS_ADDRESS of started apps. Default: the address the
	// watcher reported for that bus.
	Addresses func(bus string) string
	// StateDir holds history.jsonl and logs/ (one log per app).
	StateDir string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Concurrency bounds how many apps are being started at once; default
	// 8. Jobs waiting (for names, grace, a stopped process) do not count.
	Concurrency int
	// Notifier serves the notify action; nil makes that action fail.
	Notifier Notifier
	// Intent, if set, says whether the session is ending; it is asked when
	// a bus goes down and before each job acts. While it says so, no job
	// acts: they are skipped with its reason.
	Intent func(bus string) (ending bool, why string)
	// RulesError, if set, returns the problem with the rules on disk, shown
	// in Status.
	RulesError func() error
	// RecoveryEnded, if set, is called with each recovery once all its
	// jobs have ended (for the summary notification). It must not block.
	RecoveryEnded func(control.Recovery)
	// CasualtyGrace is how long a peer that matches no rule has to come
	// back before it is listed as a casualty; default appdb.DefaultGrace.
	CasualtyGrace time.Duration
	// UserManager is the private socket of the systemd user manager
	// (usermanager.Socket): an app that runs in a user service is
	// brought back through it, by starting or restarting its unit.
	UserManager string
	// OwnUnit is the user service busmedic runs in ("" if none): the
	// apps busmedic started itself run there too, and it is never taken
	// for theirs.
	OwnUnit string
	// Self is busmedic's own executable: a rule with action keep starts
	// its app as "Self keep -- COMMAND", so that the keeper keeps it.
	// Without it such an app is not started.
	Self string

	// dialUnits stands in for the user manager in tests; default
	// dialUserManager.
	dialUnits func(ctx context.Context, socket string) (unitManager, error)
	// logLimit and logEvery stand in for the constants logLimit and
	// logCheckEvery in tests, stormRestarts and stormSettle for theirs.
	logLimit      int64
	logEvery      time.Duration
	stormRestarts int
	stormSettle   time.Duration
	// deafGrace stands in for brokerDeafGrace in tests.
	deafGrace time.Duration
}

// Notifier shows a desktop notification and returns the key of the action
// the user chose, or "" if the notification was closed without one.
// actions are key/label pairs, as in org.freedesktop.Notifications.Notify.
type Notifier interface {
	Notify(ctx context.Context, title, body string, actions []string) (chosen string, err error)
}

// Engine recovers apps after bus restarts. Create it with New, feed it the
// watcher's events with Run; the other methods are safe to call from any
// goroutine at any time, also while a bus is down.
type Engine struct {
	cfg     Config
	log     *slog.Logger
	hist    historyLog
	act     chan struct{} // concurrency slots for starting apps
	changed chan struct{}

	mu     sync.Mutex
	paused bool
	// runCtx is Run's context while Run runs, nil otherwise: Resume
	// starts work that must end with Run, and may only add to wg
	// while Run has not begun to wait for it.
	runCtx     context.Context
	buses      map[string]*busState
	busOrder   []string
	lastJob    map[string]control.Job
	crashes    map[string][]time.Time // per rule id, for max_restarts
	lastPeers  map[string][]watcher.Peer
	casualties []control.Casualty
	last       *recovery
	children   map[int]*child
	appLocks   map[string]chan struct{}
	wg         sync.WaitGroup // every goroutine the engine started

	// units is the one connection to the user manager that every job
	// shares, dialed at first use; see userManager.
	unitsMu sync.Mutex
	units   unitManager
	// unitsDialing, while a dial is under way, is closed when it ends.
	unitsDialing chan struct{}

	logsChecked time.Time // by Run's goroutine only
	// casualtyChecks counts the ended looks for casualties, for tests.
	casualtyChecks atomic.Int64
	// deafSettled counts the possible deaf copies that are no longer
	// candidates once their name had a new owner (stopped, refused or
	// left running), for tests.
	deafSettled atomic.Int64
	// deafHeld counts the looks at deaf copies whose stop a pause held
	// back, for tests.
	deafHeld atomic.Int64
}

// busState is what the engine knows of one bus, from the events alone.
type busState struct {
	name, address string
	up            bool
	id            string
	since         time.Time
	reason        string
	// outdated says what of the running bus daemon was replaced on disk
	// (an update waiting for a bus restart); "" if nothing.
	outdated string
	peers    map[string]watcher.Peer // by unique name
	owners   map[string]string       // well-known name -> unique name
	// detached are peers that left the bus while their process stayed
	// alive (dbus-monitor turns into a monitor and leaves the name
	// table); they are part of the session all the same.
	detached map[int]watcher.Peer
	// downPeers is what the engine saw when the bus went down: the Down
	// snapshot plus the detached peers still alive.
	downPeers []watcher.Peer
	// activatable are the names the bus starts on demand, from its Up.
	activatable map[string]bool
	// deaf are the possible deaf old copies of on-demand services, by pid
	// (deaf.go): kept across restarts until the bus starts a new copy,
	// the process comes back or exits.
	deaf map[int]watcher.Peer
	// upAt is when the bus instance that is up came up: the grace of
	// the deaf copies dbus-broker started runs from then.
	upAt time.Time
	// upCtx is done when the bus instance that is up goes down, or when
	// Run ends; upCancel ends it. Nil before the first Up.
	upCtx    context.Context
	upCancel context.CancelCauseFunc
	// deafTimer is the upCtx of the instance for which a timer runs to
	// judge the deaf copies again once their grace is over
	// (deafTimerLocked), or nil.
	deafTimer context.Context
	// lastOldID and lastDowntime are of the bus's last restart, for the
	// history of the deaf copies stopped after it.
	lastOldID    string
	lastDowntime time.Duration
	// restarts are the times of the bus's recent restarts, for the storm
	// guard.
	restarts []time.Time
	// kept is what the keeper last reported of the bus (ReportKept).
	kept keptState
	// notify is closed and replaced on every change, waking waiting jobs.
	notify chan struct{}
	rec    *recovery // running recovery, if any
	// lastRec is the last ended recovery, while no newer one runs; the
	// cancelled jobs of the recovery before a restart are carried into the
	// next plan.
	lastRec *recovery
}

func (b *busState) changed() {
	close(b.notify)
	b.notify = make(chan struct{})
}

// New returns an engine; it does nothing until Run.
func New(cfg Config) *Engine {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Env == nil {
		cfg.Env = os.Environ
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.Rules == nil {
		cfg.Rules = func() *appdb.Set { return nil }
	}
	if cfg.CasualtyGrace <= 0 {
		cfg.CasualtyGrace = appdb.DefaultGrace
	}
	if cfg.dialUnits == nil {
		cfg.dialUnits = dialUserManager
	}
	if cfg.logLimit <= 0 {
		cfg.logLimit = logLimit
	}
	if cfg.logEvery <= 0 {
		cfg.logEvery = logCheckEvery
	}
	if cfg.stormRestarts <= 0 {
		cfg.stormRestarts = stormRestarts
	}
	if cfg.stormSettle <= 0 {
		cfg.stormSettle = stormSettle
	}
	if cfg.deafGrace <= 0 {
		cfg.deafGrace = brokerDeafGrace
	}
	e := &Engine{
		cfg:       cfg,
		log:       cfg.Logger,
		act:       make(chan struct{}, cfg.Concurrency),
		changed:   make(chan struct{}, 1),
		buses:     map[string]*busState{},
		lastJob:   map[string]control.Job{},
		crashes:   map[string][]time.Time{},
		lastPeers: map[string][]watcher.Peer{},
		children:  map[int]*child{},
		appLocks:  map[string]chan struct{}{},
	}
	if cfg.StateDir != "" {
		e.hist = historyLog{path: filepath.Join(cfg.StateDir, historyFile), cap: historyCap}
	}
	return e
}

// Changed delivers a value whenever Status changes. It holds at most one:
// a reader that was busy reads the latest Status once.
func (e *Engine) Changed() <-chan struct{} { return e.changed }

func (e *Engine) notifyChanged() {
	select {
	case e.changed <- struct{}{}:
	default:
	}
}

// Pause makes jobs that have not acted yet end as Skipped ("paused"), and
// holds the stop of deaf old copies, until Resume.
func (e *Engine) Pause() {
	e.mu.Lock()
	e.paused = true
	e.mu.Unlock()
	e.log.Info("recovery paused")
	e.notifyChanged()
}

// Resume undoes Pause, and brings back what the pause held back on each
// bus instance that is up now: the apps whose jobs it skipped (a recovery
// of their own, see resumeLocked) and the deaf old copies whose new copy
// is on the bus. A user who paused, then resumed, expects the apps back;
// what was skipped on a bus instance that has gone since fell off a bus
// that no longer exists, and the restart after it planned anew.
func (e *Engine) Resume() {
	e.mu.Lock()
	was := e.paused
	e.paused = false
	ctx := e.runCtx
	if ctx != nil && ctx.Err() != nil {
		ctx = nil // Run is stopping: nothing may start now
	}
	if was && ctx != nil {
		buses := slices.Clone(e.busOrder)
		for _, name := range buses {
			e.resumeLocked(ctx, e.buses[name])
		}
		// Under e.mu with Run running: Run clears runCtx under e.mu
		// before it waits for e.wg.
		e.wg.Go(func() {
			for _, bus := range buses {
				e.checkDeaf(ctx, bus)
			}
		})
	}
	e.mu.Unlock()
	e.log.Info("recovery resumed")
	e.notifyChanged()
}

// Run consumes the events of every bus until ctx is done or events is
// closed. On return it has cancelled the running jobs and waited for them;
// the apps it started keep running.
func (e *Engine) Run(ctx context.Context, events <-chan watcher.Event) error {
	ctx, cancel := context.WithCancelCause(ctx)
	e.mu.Lock()
	e.runCtx = ctx
	e.mu.Unlock()
	defer func() {
		cancel(errors.New("busmedic is stopping"))
		e.mu.Lock()
		e.runCtx = nil
		e.mu.Unlock()
		e.wg.Wait()
		e.unitsMu.Lock()
		if e.units != nil {
			e.units.close()
			e.units = nil
		}
		e.unitsMu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			e.handle(ctx, ev)
		}
	}
}

func (e *Engine) bus(name string) *busState {
	b := e.buses[name]
	if b == nil {
		b = &busState{name: name, peers: map[string]watcher.Peer{}, owners: map[string]string{},
			detached: map[int]watcher.Peer{}, deaf: map[int]watcher.Peer{}, notify: make(chan struct{})}
		e.buses[name] = b
		// The session bus first, then the system bus, whichever its
		// watcher reported first: clients list them in a fixed order.
		e.busOrder = append(e.busOrder, name)
		slices.SortStableFunc(e.busOrder, func(a, b string) int { return busRank(a) - busRank(b) })
	}
	return b
}

// busRank orders buses in the status: session, system, then any other.
func busRank(name string) int {
	switch name {
	case "session":
		return 0
	case "system":
		return 1
	}
	return 2
}

func (e *Engine) handle(ctx context.Context, ev watcher.Event) {
	defer e.capLogs(time.Now()) // after the event, which may be urgent
	e.mu.Lock()
	b := e.bus(ev.Bus)
	if ev.Address != "" {
		b.address = ev.Address
	}
	if ev.Kind != watcher.Down {
		for pid, p := range b.detached {
			if !alive(pid, p.StartTime) {
				delete(b.detached, pid)
			}
		}
	}
	switch ev.Kind {
	case watcher.Outdated:
		b.outdated = ev.Reason
	case watcher.Up:
		b.up, b.id, b.since, b.reason, b.outdated = true, ev.ID, ev.Time, "", ""
		if b.upCancel != nil {
			b.upCancel(errors.New("bus instance replaced"))
		}
		b.upCtx, b.upCancel = context.WithCancelCause(ctx)
		b.upAt = ev.Time
		if b.upAt.IsZero() {
			b.upAt = time.Now()
		}
		clear(b.peers)
		clear(b.owners)
		b.activatable = map[string]bool{}
		for _, n := range ev.Activatable {
			b.activatable[n] = true
		}
		// A deaf copy that exited meanwhile is no candidate any more;
		// checked once per bus instance rather than at every event.
		for pid, p := range b.deaf {
			if !alive(pid, p.StartTime) {
				delete(b.deaf, pid)
			}
		}
	case watcher.Down:
		b.up, b.since, b.reason, b.outdated = false, ev.Time, ev.Reason, ""
		if b.upCancel != nil {
			b.upCancel(errors.New("bus went down"))
			b.upCtx, b.upCancel = nil, nil
		}
		if ev.ID != "" {
			b.id = ev.ID
		}
		b.downPeers = slices.Clone(ev.Peers)
		// No liveness check here: a client that exits on disconnect may
		// already be gone. Dead ones were pruned at the previous event.
		for pid, p := range b.detached {
			if !slices.ContainsFunc(b.downPeers, func(q watcher.Peer) bool { return q.PID == pid }) {
				b.downPeers = append(b.downPeers, p)
			}
		}
		clear(b.peers)
		clear(b.owners)
		clear(b.detached)
		if e.cfg.UserManager != "" && slices.ContainsFunc(b.downPeers, func(p watcher.Peer) bool { return p.Unit != "" }) {
			// Apps in units come back through the user manager: be
			// connected to it by the time the bus is back.
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				if _, err := e.userManager(dctx); err != nil {
					e.log.Debug("user manager not reached ahead of the recovery", "err", err)
				}
			}()
		}
		if r := b.rec; r != nil {
			// Jobs cannot progress on a bus that is gone; the next
			// Restarted plans them anew.
			r.rec.Decision = "bus went down again during recovery"
			r.cancel(errors.New("bus went down again"))
		}
	case watcher.Restarted:
		e.startRecoveryLocked(ctx, b, ev)
	case watcher.PeerJoined:
		if ev.Peer != nil {
			e.addPeerLocked(b, *ev.Peer)
		}
	case watcher.PeerLeft:
		if ev.Peer != nil {
			p := *ev.Peer
			e.removePeerLocked(b, p.UniqueName)
			if alive(p.PID, p.StartTime) && p.StartTime != 0 {
				b.detached[p.PID] = p
			}
		}
	case watcher.NameOwnerChanged:
		if ev.OldOwner != "" {
			if p, ok := b.peers[ev.OldOwner]; ok {
				p.Names = slices.DeleteFunc(slices.Clone(p.Names), func(n string) bool { return n == ev.Name })
				b.peers[ev.OldOwner] = p
			}
			if b.owners[ev.Name] == ev.OldOwner {
				delete(b.owners, ev.Name)
			}
		}
		if ev.NewOwner != "" {
			b.owners[ev.Name] = ev.NewOwner
			if ev.Peer != nil && ev.Peer.UniqueName == ev.NewOwner {
				e.addPeerLocked(b, *ev.Peer)
			} else if p, ok := b.peers[ev.NewOwner]; ok && !p.Owns(ev.Name) {
				p.Names = append(slices.Clone(p.Names), ev.Name)
				slices.Sort(p.Names)
				b.peers[ev.NewOwner] = p
			}
		}
	}
	b.changed()
	e.mu.Unlock()

	if ev.Kind == watcher.PeerLeft && ev.Peer != nil && ev.Peer.PID == 0 {
		e.scanDetached(ev.Bus)
	}
	if ev.Kind == watcher.NameOwnerChanged && ev.NewOwner != "" ||
		ev.Kind == watcher.PeerJoined && ev.Peer != nil && len(ev.Peer.Names) > 0 {
		// Maybe the bus started the new copy of a deaf old one (a peer
		// joins with names when the watcher finds it already there).
		e.checkDeaf(ctx, ev.Bus)
	}
	if ev.Kind == watcher.Down && e.cfg.Intent != nil {
		if ending, why := e.cfg.Intent(ev.Bus); ending {
			e.recordEnding(ev, why)
		}
	}
	e.notifyChanged()
}

func (e *Engine) addPeerLocked(b *busState, p watcher.Peer) {
	if old, ok := b.peers[p.UniqueName]; ok {
		for _, n := range old.Names {
			if b.owners[n] == p.UniqueName && !p.Owns(n) {
				delete(b.owners, n)
			}
		}
	}
	b.peers[p.UniqueName] = p
	for _, n := range p.Names {
		b.owners[n] = p.UniqueName
	}
	delete(b.detached, p.PID)
	// Someone started a casualty again by hand: it is no longer one.
	e.casualties = slices.DeleteFunc(e.casualties, func(c control.Casualty) bool {
		return c.Bus == b.name && sameProgram(c.Peer, p)
	})
}

func (e *Engine) removePeerLocked(b *busState, unique string) {
	p, ok := b.peers[unique]
	if !ok {
		return
	}
	delete(b.peers, unique)
	for _, n := range p.Names {
		if b.owners[n] == unique {
			delete(b.owners, n)
		}
	}
}

// sameProgram reports whether b runs the program a ran: the same command
// line, but for a file of its own in the user's runtime directory.
func sameProgram(a, b watcher.Peer) bool {
	return sameCommand(a.Argv, b.Argv, os.Getenv("XDG_RUNTIME_DIR"))
}

// sameCommand reports whether the command lines a and b start the same
// program: equal, but for arguments that name a file in the runtime
// directory rt after the same prefix, which a program started again gets
// anew. Plasma's shell starts its kioslave5 workers with a socket of
// their own, such as local:/run/user/1000/plasmashellAbc123.1.kioworker.socket:
// the worker the new shell starts is the old one back.
func sameCommand(a, b []string, rt string) bool {
	if len(a) == 0 || len(a) != len(b) {
		return false
	}
	rt = strings.TrimSuffix(rt, "/") + "/"
	for i := range a {
		if a[i] == b[i] {
			continue
		}
		ia, ib := strings.Index(a[i], rt), strings.Index(b[i], rt)
		if rt == "/" || ia < 0 || ib < 0 || a[i][:ia] != b[i][:ib] {
			return false
		}
	}
	return true
}

// address returns the address started apps get for bus.
func (e *Engine) address(bus string) string {
	if e.cfg.Addresses != nil {
		if a := e.cfg.Addresses(bus); a != "" {
			return a
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if b := e.buses[bus]; b != nil {
		return watcher.WithoutGUID(b.address)
	}
	return ""
}

// env builds a started app's environment: the base environment, the current
// bus addresses (a stale address from our own environment would point the
// app at nothing), then the rule's env.
func (e *Engine) env(extra map[string]string) []string {
	base := e.cfg.Env()
	out := make([]string, 0, len(base)+2+len(extra))
	override := map[string]string{}
	for _, bus := range []string{"session", "system"} {
		if a := e.address(bus); a != "" {
			override["DBUS_"+strings.ToUpper(bus)+"_BUS_ADDRESS"] = a
		}
	}
	for k, v := range extra {
		override[k] = v
	}
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := override[k]; !ok {
			out = append(out, kv)
		}
	}
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range override {
			if !yield(k) {
				return
			}
		}
	}) {
		out = append(out, k+"="+override[k])
	}
	return out
}

// fileSafe replaces each run of characters other than [a-zA-Z0-9._-] in
// s by one "_", for a file name or an id made of a program's name.
func fileSafe(s string) string {
	var b strings.Builder
	run := false
	for _, r := range s {
		if ok := r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'); ok {
			b.WriteRune(r)
			run = false
		} else if !run {
			b.WriteByte('_')
			run = true
		}
	}
	return b.String()
}

func (e *Engine) logPath(app string) string {
	if e.cfg.StateDir == "" {
		return ""
	}
	return filepath.Join(e.cfg.StateDir, "logs", fileSafe(app)+".log")
}

// Status returns what the engine knows now.
func (e *Engine) Status() control.Status {
	st, keepers := e.status()
	// A keeper that died took its apps' connections with it: what it
	// reported last is no longer so. (Read outside the lock: /proc.)
	for bus, pid := range keepers {
		if !alive(pid, 0) {
			st.Kept = slices.DeleteFunc(st.Kept, func(a control.KeptApp) bool { return a.Bus == bus })
		}
	}
	return st
}

// status is Status, with the pid of the keeper of each bus whose kept
// apps it lists.
func (e *Engine) status() (control.Status, map[string]int) {
	set := e.cfg.Rules()
	e.mu.Lock()
	defer e.mu.Unlock()
	st := control.Status{Time: time.Now(), Paused: e.paused}
	keepers := map[string]int{}
	running := map[string][]int{} // rule id -> pids on its bus
	for _, name := range e.busOrder {
		b := e.buses[name]
		st.Buses = append(st.Buses, control.BusStatus{Name: name, Address: b.address, Up: b.up, ID: b.id,
			Since: b.since, Reason: b.reason, Peers: len(b.peers), Outdated: b.outdated})
		st.Kept = append(st.Kept, b.kept.report.Apps...)
		if len(b.kept.report.Apps) > 0 {
			keepers[name] = b.kept.keeper()
		}
		if set == nil {
			continue
		}
		for _, p := range b.peers {
			// The keeper's connections are its kept apps', listed below
			// with their own processes.
			if p.PID == b.kept.keeper() && p.PID > 0 {
				continue
			}
			if r, ok := set.MatchBus(appdb.Bus(name), p); ok && p.PID > 0 {
				running[r.ID] = append(running[r.ID], p.PID)
			}
		}
		if b.up {
			for _, p := range b.kept.peers {
				if r, ok := set.MatchBus(appdb.Bus(name), p); ok {
					running[r.ID] = append(running[r.ID], p.PID)
				}
			}
		}
		for _, p := range b.detached {
			if r, ok := set.MatchBus(appdb.Bus(name), p); ok {
				running[r.ID] = append(running[r.ID], p.PID)
			}
		}
	}
	if set != nil {
		for _, r := range set.Rules() {
			a := control.AppStatus{ID: r.ID, Name: r.DisplayName(), Icon: r.Icon, Bus: string(r.Bus),
				Action: string(r.Action), Enabled: r.Enabled}
			if pids, ok := running[r.ID]; ok {
				a.Running = true
				slices.Sort(pids)
				a.PIDs = slices.Compact(pids)
			}
			if j, ok := e.lastJob[r.ID]; ok {
				a.Last = &j
			}
			st.Apps = append(st.Apps, a)
		}
	}
	st.Casualties = slices.Clone(e.casualties)
	if e.last != nil {
		r := e.last.snapshot()
		st.LastRecovery = &r
	}
	if e.cfg.RulesError != nil {
		if err := e.cfg.RulesError(); err != nil {
			st.RulesError = err.Error()
		}
	}
	return st, keepers
}

// History returns up to n ended recoveries (all if n <= 0), newest first,
// from the history file.
func (e *Engine) History(n int) ([]control.Recovery, error) {
	return e.hist.read(n)
}

// Plan is a dry run: the jobs a restart of bus would make now if snapshot
// were the peers that fell off.
func (e *Engine) Plan(bus string, snapshot []watcher.Peer) []control.PlannedJob {
	jobs, _ := e.plan(bus, snapshot)
	return jobs
}

func (e *Engine) plan(bus string, snapshot []watcher.Peer) ([]control.PlannedJob, []watcher.Peer) {
	set := e.cfg.Rules()
	e.mu.Lock()
	b := e.bus(bus)
	in := planInput{bus: bus, rules: set, snapshot: snapshot, paused: e.paused, now: time.Now(),
		crashes: map[string][]time.Time{}, ours: ours, ownUnit: e.cfg.OwnUnit,
		kept: slices.Clone(b.kept.peers), keeper: b.kept.keeper(), keptCommand: map[int]string{},
		self: e.cfg.Self, keptGrace: e.cfg.CasualtyGrace}
	for _, a := range b.kept.report.Apps {
		in.keptCommand[a.PID] = a.Command
	}
	for k, v := range e.crashes {
		in.crashes[k] = slices.Clone(v)
	}
	e.mu.Unlock()
	return plan(in)
}

// runningChildren returns the processes the engine started that still run.
func (e *Engine) runningChildren() []*child {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*child
	for _, c := range e.children {
		out = append(out, c)
	}
	return out
}

// recordEnding records, at the moment a bus goes down with the session
// ending, that its apps will not be recovered and why: the daemon usually
// exits right after, before any restart could be planned.
func (e *Engine) recordEnding(ev watcher.Event, why string) {
	jobs, _ := e.plan(ev.Bus, ev.Peers)
	now := time.Now()
	rec := control.Recovery{Bus: ev.Bus, OldID: ev.ID, Started: now, Ended: now,
		Decision: "session ending: " + why + ": no recovery", Jobs: make([]control.Job, 0, len(jobs))}
	e.mu.Lock()
	for _, pj := range jobs {
		j := control.Job{App: pj.App, Bus: ev.Bus, Action: string(pj.Rule.Action), Outcome: control.Skipped,
			Reason: "session ending: " + why, Started: now}
		rec.Jobs = append(rec.Jobs, j)
		e.lastJob[pj.App] = j
	}
	e.mu.Unlock()
	e.log.Info("bus down while the session is ending: no recovery", "bus", ev.Bus, "why", why, "apps", len(jobs))
	if err := e.hist.append(rec); err != nil {
		e.log.Warn("history not written", "err", err)
	}
}
