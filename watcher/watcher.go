// Package watcher follows a D-Bus bus: it reports at once when the bus goes
// down, when it comes back (and whether it is a new instance), and keeps an
// inventory of the peers on it, so that whoever recovers a session knows who
// fell off.
//
// A Watcher owns a private connection per bus; it never uses godbus's shared
// SessionBus or SystemBus connections, which cannot be replaced once their
// bus is gone. While the bus is up the Watcher wakes only for bus traffic;
// while it is down it waits for the socket file to appear (fsnotify) and
// retries with capped, jittered backoff, so socket-activated, abstract and
// TCP buses come back too.
//
// Beside the buses, the package reads the signs that a lost bus was meant
// to go: the login session closing or the machine shutting down (Logind,
// from the system bus) and the display server gone (DisplayGone).
package watcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"busmedic/journallog"
)

const (
	busName     = "org.freedesktop.DBus"
	callTimeout = 5 * time.Second
	dialTimeout = 5 * time.Second
	// A socket-activated bus (systemd's dbus.socket) keeps its socket
	// file: no file event tells when the new daemon listens, and the
	// first dials meet the old daemon on its way out. Short first steps
	// find the new one within milliseconds; the backoff doubles from
	// there, so a long outage costs only a few more dials.
	backoffFirst = 5 * time.Millisecond
	// With a socket file to watch, a retry only catches buses whose socket
	// never disappears (socket activation), so it may be rare.
	backoffMaxWatched = 30 * time.Second
	backoffMax        = 5 * time.Second
)

// Watcher follows one bus. Create it with New and start it with Run.
type Watcher struct {
	target    Target
	endpoints []endpoint
	log       *slog.Logger
	upDown    bool // UpDownOnly

	// files holds the goroutines that follow the bus daemon's files, one
	// per connection; Run waits for them before it returns.
	files sync.WaitGroup
	// filesWatched, if set, is called once a connection's file watch is in
	// place and its first check done; tests wait on it, since nothing on
	// the bus tells it.
	filesWatched func()

	// unconfirmed counts the losses the bus has not confirmed yet (see
	// departures); tests wait for it to drop to zero.
	unconfirmed atomic.Int32

	mu    sync.Mutex
	up    bool
	id    string
	peers map[string]*Peer // by unique name, while up
	// left are the unique names that left the bus before the watcher knew
	// them. Signals that arrive while the watcher is behind are handed
	// over in any order (godbus delivers each one past its buffer on a
	// goroutine of its own), and a join applied after its leave would
	// leave a peer that is gone in the inventory for good. A bus never
	// gives a unique name out twice.
	left map[string]bool
}

// Option configures a Watcher.
type Option func(*Watcher)

// WithLogger sets the logger; the default is slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(w *Watcher) { w.log = l }
}

// UpDownOnly makes the watcher tell only whether the bus is up: it follows
// no names, takes no inventory of the peers and does not look at the bus
// daemon's process or files, which read /proc and dpkg's database. Its Up
// events carry no Peer. For a program that only waits for its bus, such as
// the tray.
func UpDownOnly() Option {
	return func(w *Watcher) { w.upDown = true }
}

// New returns a Watcher for the target, or an error wrapping ErrBadAddress
// if the target's address cannot be used.
func New(t Target, opts ...Option) (*Watcher, error) {
	eps, err := parseAddress(t.Address)
	if err != nil {
		return nil, err
	}
	w := &Watcher{target: t, endpoints: eps, log: slog.Default()}
	for _, o := range opts {
		o(w)
	}
	w.log = w.log.With("bus", t.Name)
	return w, nil
}

// Target returns the bus this Watcher follows.
func (w *Watcher) Target() Target { return w.target }

// Peers returns the peers on the bus now, sorted by unique name, or nil
// while the bus is down.
func (w *Watcher) Peers() []Peer {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.snapshotLocked()
}

// State reports whether the bus is up and its instance id.
func (w *Watcher) State() (up bool, id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.up, w.id
}

func (w *Watcher) snapshotLocked() []Peer {
	if len(w.peers) == 0 {
		return nil
	}
	out := make([]Peer, 0, len(w.peers))
	for _, p := range w.peers {
		out = append(out, p.clone())
	}
	slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(a.UniqueName, b.UniqueName) })
	return out
}

// history is what Run remembers across connections to tell a restart from
// a reconnection.
type history struct {
	down     bool
	downAt   time.Time
	lastID   string
	lastSeen []Peer
}

// Run follows the bus and sends its events to out, in order, until ctx is
// done. It never gives up: a bus that cannot be reached is reported Down once
// and retried quietly. Run must not be called twice at the same time.
func (w *Watcher) Run(ctx context.Context, out chan<- Event) {
	emit := func(e Event) {
		e.Bus = w.target.Name
		e.Address = w.target.Address
		if e.Time.IsZero() {
			e.Time = time.Now()
		}
		select {
		case out <- e:
		case <-ctx.Done():
		}
	}
	var h history
	var dirs dirWatch
	defer dirs.close()
	defer w.files.Wait()
	// The inotify instance for outages and for the daemon's files is made
	// now, not at the first outage, so that what the watcher holds stays
	// the same all along; a failure is retried when it is needed.
	if w.socketPath() != "" || !w.upDown {
		if err := dirs.open(); err != nil {
			w.log.Debug("no inotify instance yet", "err", err)
		}
	}
	for ctx.Err() == nil {
		conn, err := w.dial(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !h.down {
				h.down, h.downAt = true, time.Now()
				w.log.Warn("bus not reachable", "address", w.target.Address, "err", err)
				emit(Event{Kind: Down, Time: h.downAt, ID: h.lastID, Reason: "not reachable: " + err.Error()})
			}
			if conn = w.awaitBus(ctx, &dirs); conn == nil {
				return
			}
		}
		w.follow(ctx, conn, &h, &dirs, emit)
	}
}

// follow serves one connection: it reports Up (and Restarted), the peers
// found, live changes, and finally Down, which it reports the moment the
// connection breaks. It is the reader of dirs' events while the bus is up,
// for the connection's file watch.
func (w *Watcher) follow(ctx context.Context, conn *dbus.Conn, h *history, dirs *dirWatch, emit func(Event)) {
	defer conn.Close()
	// godbus delivers to a full channel from extra goroutines, which can
	// reorder signals; a deep buffer keeps bursts (a session logging in) in order.
	signals := make(chan *dbus.Signal, 1024)
	conn.Signal(signals)
	own := conn.Names()[0]

	id, daemon, activatable, err := w.setup(ctx, conn)
	if err != nil {
		// The bus went away during setup: the next dial decides what it is.
		w.log.Debug("bus setup failed", "err", err)
		if !h.down {
			h.down, h.downAt = true, time.Now()
			emit(Event{Kind: Down, Time: h.downAt, ID: h.lastID, Reason: "lost during setup: " + err.Error()})
		}
		return
	}
	upAt := time.Now()
	w.mu.Lock()
	w.up, w.id, w.peers, w.left = true, id, map[string]*Peer{}, map[string]bool{}
	w.mu.Unlock()
	emit(Event{Kind: Up, Time: upAt, ID: id, Peer: daemon, Activatable: activatable})
	if h.down && h.lastID != "" && h.lastID != id {
		w.log.Info("bus restarted", journallog.EventKey, journallog.BusRestarted, "old_id", h.lastID, "id", id, "downtime", upAt.Sub(h.downAt))
		emit(Event{Kind: Restarted, Time: upAt, ID: id, OldID: h.lastID, Downtime: upAt.Sub(h.downAt), Peers: h.lastSeen})
	} else if h.down {
		w.log.Info("bus up", "id", id)
	}
	h.down, h.lastID, h.lastSeen = false, id, nil
	// Deferred after the Down report: stopping the file watch waits for
	// nothing, but its goroutine is only waited for when Run returns.
	var outdated <-chan Event
	var files *fileWatch
	if !w.upDown {
		var stopFiles func()
		outdated, files, stopFiles = w.followFiles(ctx, daemon, dirs)
		defer stopFiles()
		for _, p := range w.inventory(ctx, conn, own) {
			emit(Event{Kind: PeerJoined, ID: id, Peer: &p})
		}
	}

	// Departures are confirmed by a round trip to the bus daemon: see
	// departures.
	deps := departures{conn: conn}
	report := func(sig *dbus.Signal) {
		if e, ok := w.apply(ctx, conn, own, sig); ok {
			e.ID = id
			deps.record(e)
			w.unconfirmed.Store(deps.count())
			emit(e)
		}
	}
	done := conn.Context().Done()
	// Read even without a file watch: an event of the socket's directory
	// that came after awaitBus stopped reading must not hold up fsnotify.
	fsEvents, fsErrors := dirs.channels()
	for {
		select {
		case <-ctx.Done():
			w.markDown()
			return
		case <-done:
			w.drain(signals, report)
			deps.takeAnswers()
			w.reportDown(h, id, deps.unconfirmed(), emit)
			return
		case sig, ok := <-signals:
			if !ok {
				deps.takeAnswers()
				w.reportDown(h, id, deps.unconfirmed(), emit)
				return
			}
			if w.upDown {
				continue
			}
			report(sig)
		case call := <-deps.answered():
			deps.confirm(call)
			w.unconfirmed.Store(deps.count())
		case e := <-outdated:
			e.ID = id
			emit(e)
		case ev := <-fsEvents:
			files.offer(ev)
		case err := <-fsErrors:
			// Events may be lost (the kernel's queue overflowed): the
			// file watch looks again rather than trusting silence.
			w.log.Debug("file watch", "err", err)
			files.lost()
		}
	}
}

// drain applies the signals that arrived before the connection broke, so
// that the Down snapshot holds the last state the bus told us about. During
// an orderly shutdown these are the daemon's goodbyes for its other peers.
func (w *Watcher) drain(signals <-chan *dbus.Signal, report func(*dbus.Signal)) {
	if w.upDown {
		return
	}
	for {
		select {
		case sig, ok := <-signals:
			if !ok {
				return
			}
			report(sig)
		default:
			return
		}
	}
}

func (w *Watcher) markDown() []Peer {
	w.mu.Lock()
	defer w.mu.Unlock()
	snap := w.snapshotLocked()
	w.up, w.peers, w.left = false, nil, nil
	return snap
}

func (w *Watcher) reportDown(h *history, id string, gone []Peer, emit func(Event)) {
	now := time.Now()
	snap := mergePeers(w.markDown(), gone)
	reason := w.downReason()
	w.log.Warn("bus down", "id", id, "reason", reason, "peers", len(snap))
	h.down, h.downAt, h.lastSeen = true, now, snap
	emit(Event{Kind: Down, Time: now, ID: id, Reason: reason, Peers: snap})
}

// downReason tells a daemon that shut down (it removes its socket file) from
// one that was killed or crashed (the file stays behind).
func (w *Watcher) downReason() string {
	for _, ep := range w.endpoints {
		if ep.path == "" {
			continue
		}
		if _, err := os.Stat(ep.path); errors.Is(err, os.ErrNotExist) {
			return "connection closed; socket file removed (bus daemon exited)"
		}
		return "connection lost; socket file still there (bus daemon killed or crashed?)"
	}
	return "connection closed"
}

// setup subscribes to name changes and reads the bus id and who the bus
// daemon is. The match comes first so that no change between the inventory
// and the subscription is missed.
func (w *Watcher) setup(ctx context.Context, conn *dbus.Conn) (id string, daemon *Peer, activatable []string, err error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	bus := conn.BusObject()
	// The calls go out together and the bus answers them in order: one
	// round trip instead of four before Up, and the match still comes
	// before anything this connection asks later.
	call := func(method string, args ...any) *dbus.Call {
		return bus.GoWithContext(cctx, busName+"."+method, 0, make(chan *dbus.Call, 1), args...)
	}
	var match, getID, names, daemonPID *dbus.Call
	if !w.upDown {
		match = call("AddMatch", "type='signal',sender='"+busName+"',interface='"+busName+"',member='NameOwnerChanged'")
	}
	getID = call("GetId")
	if !w.upDown {
		names = call("ListActivatableNames")
		daemonPID = call("GetConnectionUnixProcessID", busName)
	}
	if match != nil {
		if err := (<-match.Done).Err; err != nil {
			return "", nil, nil, fmt.Errorf("subscribe to NameOwnerChanged: %w", err)
		}
	}
	if err := (<-getID.Done).Store(&id); err != nil {
		return "", nil, nil, fmt.Errorf("GetId: %w", err)
	}
	if w.upDown {
		return id, nil, nil, nil
	}
	// Who the bus starts on demand is not a casualty when it stays away:
	// the bus brings it back at the next call.
	if err := (<-names.Done).Store(&activatable); err == nil {
		activatable = slices.DeleteFunc(activatable, func(n string) bool { return n == busName })
		slices.Sort(activatable)
	}
	// The daemon's process tells how the bus was started (systemd,
	// dbus-launch...) and whether its binary was updated since.
	var pid uint32
	if err := (<-daemonPID.Done).Store(&pid); err == nil && pid > 0 {
		p, err := ProcessInfo(int(pid))
		if err != nil {
			p = Peer{PID: int(pid), UID: -1}
		}
		p.UniqueName, p.Names = busName, []string{busName}
		daemon = &p
	}
	return id, daemon, activatable, nil
}

// inventory lists the peers on a fresh connection and records them.
func (w *Watcher) inventory(ctx context.Context, conn *dbus.Conn, own string) []Peer {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	var names []string
	if err := conn.BusObject().CallWithContext(cctx, busName+".ListNames", 0).Store(&names); err != nil {
		w.log.Debug("ListNames failed", "err", err)
		return nil
	}
	found := map[string]*Peer{}
	for _, n := range names {
		if strings.HasPrefix(n, ":") && n != own {
			p := w.credentials(cctx, conn, n)
			found[n] = &p
		}
	}
	for _, n := range names {
		if strings.HasPrefix(n, ":") || n == busName {
			continue
		}
		var owner string
		if err := conn.BusObject().CallWithContext(cctx, busName+".GetNameOwner", 0, n).Store(&owner); err != nil {
			continue // released meanwhile; NameOwnerChanged will say so
		}
		if p := found[owner]; p != nil {
			p.addName(n)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var added []Peer
	for n, p := range found {
		// A NameOwnerChanged may already have recorded it; keep that one.
		if _, dup := w.peers[n]; !dup {
			w.peers[n] = p
			added = append(added, p.clone())
		}
	}
	slices.SortFunc(added, func(a, b Peer) int { return strings.Compare(a.UniqueName, b.UniqueName) })
	return added
}

// credentials asks the bus who is behind a connection and completes the
// answer from /proc. Failures leave fields empty: the peer may be gone.
func (w *Watcher) credentials(ctx context.Context, conn *dbus.Conn, unique string) Peer {
	p := Peer{UniqueName: unique, UID: -1}
	var creds map[string]dbus.Variant
	if err := conn.BusObject().CallWithContext(ctx, busName+".GetConnectionCredentials", 0, unique).Store(&creds); err != nil {
		return p
	}
	pid := 0
	if v, ok := creds["ProcessID"].Value().(uint32); ok {
		pid = int(v)
	}
	// A bus that hands out a pidfd (dbus-broker, dbus-daemon 1.15.2 and
	// later) pins the process: no pid reuse between its answer and our
	// look at /proc can make us record another process.
	pidfd := -1
	if v, ok := creds["ProcessFD"].Value().(dbus.UnixFD); ok {
		pidfd = int(v)
		defer unix.Close(pidfd)
	}
	if pid > 0 || pidfd >= 0 {
		if info, err := pinnedProcessInfo(pid, pidfd); err == nil {
			info.UniqueName = unique
			p = info
		} else {
			p.PID = pid
		}
	}
	if v, ok := creds["UnixUserID"].Value().(uint32); ok {
		p.UID = int(v)
	}
	return p
}

// apply updates the inventory from one NameOwnerChanged signal and returns
// the event to report, if any.
func (w *Watcher) apply(ctx context.Context, conn *dbus.Conn, own string, sig *dbus.Signal) (Event, bool) {
	if sig.Name != busName+".NameOwnerChanged" || len(sig.Body) != 3 {
		return Event{}, false
	}
	name, _ := sig.Body[0].(string)
	oldOwner, _ := sig.Body[1].(string)
	newOwner, _ := sig.Body[2].(string)
	if name == own || name == "" {
		return Event{}, false
	}
	if strings.HasPrefix(name, ":") {
		switch {
		case oldOwner == "" && newOwner != "":
			w.mu.Lock()
			_, known := w.peers[name]
			left := w.left[name]
			w.mu.Unlock()
			if known || left {
				return Event{}, false
			}
			// A peer gone already is recorded all the same, with what
			// little is known: its goodbye, which comes after, removes
			// it, and tells the engine to look for the process (a
			// dbus-monitor leaves the name table as it becomes a
			// monitor, and lives on).
			cctx, cancel := context.WithTimeout(ctx, callTimeout)
			p := w.credentials(cctx, conn, name)
			cancel()
			w.mu.Lock()
			w.peers[name] = &p
			w.mu.Unlock()
			// A copy: the map entry changes as names come and go.
			c := p.clone()
			return Event{Kind: PeerJoined, Peer: &c}, true
		case newOwner == "":
			w.mu.Lock()
			p, known := w.peers[name]
			delete(w.peers, name)
			if !known && w.left != nil {
				w.left[name] = true
			}
			w.mu.Unlock()
			if !known {
				return Event{}, false
			}
			c := p.clone()
			return Event{Kind: PeerLeft, Peer: &c}, true
		}
		return Event{}, false
	}
	e := Event{Kind: NameOwnerChanged, Name: name, OldOwner: oldOwner, NewOwner: newOwner}
	w.mu.Lock()
	if p := w.peers[oldOwner]; p != nil {
		p.removeName(name)
		c := p.clone()
		e.Peer = &c
	}
	if p := w.peers[newOwner]; p != nil {
		p.addName(name)
		c := p.clone()
		e.Peer = &c
	}
	w.mu.Unlock()
	return e, true
}

// dial connects, authenticates and says Hello on the first endpoint of the
// address that answers.
func (w *Watcher) dial(ctx context.Context) (*dbus.Conn, error) {
	return dialAny(ctx, w.endpoints)
}

// dialAny connects to the first of the endpoints that answers, as the
// D-Bus specification says a client tries an address list.
func dialAny(ctx context.Context, eps []endpoint) (*dbus.Conn, error) {
	var errs []error
	for _, ep := range eps {
		conn, err := dialEndpoint(ctx, ep)
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func dialEndpoint(ctx context.Context, ep endpoint) (*dbus.Conn, error) {
	d := net.Dialer{Timeout: dialTimeout}
	nc, err := d.DialContext(ctx, ep.network, ep.addr)
	if err != nil {
		return nil, err
	}
	// Auth and Hello do not take a context; a deadline on the socket keeps
	// a hung bus from hanging us.
	_ = nc.SetDeadline(time.Now().Add(callTimeout))
	var conn *dbus.Conn
	if uc, ok := nc.(*net.UnixConn); ok {
		conn, err = dbus.DialUnix(uc, dbus.WithContext(ctx))
	} else {
		conn, err = dbus.NewConn(nc, dbus.WithContext(ctx))
	}
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("connect to %s: %w", ep.addr, err)
	}
	uid := strconv.Itoa(os.Geteuid())
	if err := conn.Auth([]dbus.Auth{dbus.AuthExternal(uid), dbus.AuthAnonymous()}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("authenticate to %s: %w", ep.addr, err)
	}
	if err := conn.Hello(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("hello to %s: %w", ep.addr, err)
	}
	_ = nc.SetDeadline(time.Time{})
	return conn, nil
}

// awaitBus waits for the bus to come back and returns a connection to it,
// or nil when ctx is done. It reacts to the socket file appearing at once and
// otherwise retries with backoff; a stale socket file costs one failed dial
// per backoff step, never a busy loop. It is the reader of dirs' events
// while the bus is down.
func (w *Watcher) awaitBus(ctx context.Context, dirs *dirWatch) *dbus.Conn {
	socket := w.socketPath()
	var fsEvents <-chan fsnotify.Event
	var fsErrors <-chan error
	limit := backoffMax
	if socket != "" {
		dir := filepath.Dir(socket)
		err := dirs.open()
		if err == nil {
			err = dirs.add(dir)
		}
		if err == nil {
			// Removed at once on Up: the socket's directory (the
			// runtime directory, /tmp) is busy, and its events would
			// only wake follow for nothing.
			defer dirs.remove(dir)
			fsEvents, fsErrors = dirs.channels()
			limit = backoffMaxWatched
		} else {
			w.log.Debug("cannot watch socket directory; retrying on a timer", "dir", dir, "err", err)
		}
	}
	b := newBackoff(backoffFirst, limit)
	// The socket may have come back between the failed dial and the watch.
	if conn, err := w.dial(ctx); err == nil {
		return conn
	}
	timer := time.NewTimer(b.next())
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-fsEvents:
			// Events of the daemon's directories, from a file watch
			// winding down, end here too.
			if ev.Name != socket || ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
				continue
			}
			if conn := w.dialSoon(ctx); conn != nil {
				return conn
			}
			// A new socket that does not answer yet: look again soon
			// rather than at the end of a long backoff step.
			b = newBackoff(backoffFirst, limit)
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			timer.Reset(b.next())
		case err := <-fsErrors:
			w.log.Debug("socket directory watch", "err", err)
		case <-timer.C:
			conn, err := w.dial(ctx)
			if err == nil {
				return conn
			}
			w.log.Debug("bus still down", "err", err)
			timer.Reset(b.next())
		}
	}
}

// socketPath returns the socket file of the first endpoint that has one,
// or "".
func (w *Watcher) socketPath() string {
	for _, ep := range w.endpoints {
		if ep.path != "" {
			return ep.path
		}
	}
	return ""
}

// dialSoon dials a socket that has just been created. A daemon creates its
// socket file when it binds, a few milliseconds before it listens, and no
// file event marks the listen; so a refused dial is retried at short, fixed
// intervals for a bounded time (200 µs steps for 50 ms, then slower up to
// about half a second), after which the backoff timer takes over.
func (w *Watcher) dialSoon(ctx context.Context) *dbus.Conn {
	delay := 200 * time.Microsecond
	start := time.Now()
	for time.Since(start) < 500*time.Millisecond {
		conn, err := w.dial(ctx)
		if err == nil {
			return conn
		}
		if time.Since(start) > 50*time.Millisecond {
			delay = 20 * time.Millisecond
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
	return nil
}
