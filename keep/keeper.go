package keep

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"busmedic/relaunch/control"
)

// Timing of the keeper's own work with the bus.
const (
	// authTimeout bounds an app's authentication conversation.
	authTimeout = 30 * time.Second
	// dialTimeout bounds connecting and authenticating to the bus.
	dialTimeout = 5 * time.Second
	// callTimeout bounds the wait for the bus's replies during a replay.
	callTimeout = 10 * time.Second
	// backoffMin and backoffMax bound the wait between reconnects.
	backoffMin = 5 * time.Millisecond
	backoffMax = 500 * time.Millisecond
	// smallRead is the read buffer of the keeper's own short-lived
	// connections (probes, names burnt).
	smallRead = 4 << 10
	// maxReplayFails is how often one connection's replay may fail while
	// the bus answers others before the keeper gives up on it.
	maxReplayFails = 3
)

// Config says which bus a Keeper keeps apps on and whom it tells.
type Config struct {
	// Bus is the bus's name for reports and logs, such as "session".
	Bus string
	// Address returns the real bus's address; it is asked at every
	// (re)connect.
	Address func() (string, error)
	// Logger is where the keeper logs; nil means slog.Default().
	Logger *slog.Logger
	// Report, if set, is called whenever what is kept changes and after
	// each replay (that report has Replays set, once). It is never called
	// concurrently and must not block long.
	Report func(control.KeptReport)
}

// Keeper stands between apps and a bus: see the package documentation.
type Keeper struct {
	cfg  Config
	log  *slog.Logger
	guid string
	uid  int

	// names maps unique names between the bus and the apps once a
	// restart has made them differ; nil while they do not.
	names atomic.Pointer[nameMap]

	notify chan struct{} // a report is due
	wake   chan struct{} // the bus may be down: reconnect
	wg     sync.WaitGroup
	// poll reads and forwards the kept connections; set by Serve.
	poll *poller
	// epollWait, if set before Serve, stands in for epoll_wait(2) in the
	// poller: tests inject its failures.
	epollWait func(epfd int, events []unix.EpollEvent, msec int) (int, error)
	// wentLive, if set before Serve, is called in a replay's second phase
	// each time a connection has gone live: tests end the bus there.
	wentLive func()

	mu      sync.Mutex
	conns   []*conn
	up      bool
	gen     uint64 // counts the bus instances the keeper has seen go
	busGUID string
	replays []control.Replay // for the next report
	// aliases are the names of connections that took a name on the bus
	// a kept app may know (see aliasNewcomers), until the next restart.
	aliases *nameMap
	closing bool
	// sentinel is the keeper's own connection to the bus instance gen
	// while it is up (watchBus).
	sentinel *sock
}

// nameMap maps the unique names of kept connections between the bus
// they are on now and the one they first connected to.
type nameMap struct {
	toStable  map[string]string // current -> stable
	toCurrent map[string]string // stable -> current
}

// serverGUID returns a new server GUID for the apps' side: 16 random bytes
// in hex, as the D-Bus specification wants. They come from getrandom(2),
// as crypto/rand's do, but without crypto/rand, which would link Go's
// whole FIPS module and math/big into busmedic for these 16 bytes (0.16 MB
// of code and data that each busmedic process maps). Like crypto/rand, it
// gives up only when the kernel has no randomness to give.
func serverGUID() string {
	var id [16]byte
	n := 0
	for n < len(id) {
		m, err := unix.Getrandom(id[n:], 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			break
		}
		n += m
	}
	if n < len(id) {
		// A kernel older than getrandom(2) (3.17).
		f, err := os.Open("/dev/urandom")
		if err == nil {
			_, err = io.ReadFull(f, id[:])
			f.Close()
		}
		if err != nil {
			panic("keep: no randomness for a server GUID: " + err.Error())
		}
	}
	return hex.EncodeToString(id[:])
}

// New returns a Keeper for cfg; Serve makes it work.
func New(cfg Config) *Keeper {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Keeper{
		cfg:    cfg,
		log:    log.With("bus", cfg.Bus),
		guid:   serverGUID(),
		uid:    os.Getuid(),
		notify: make(chan struct{}, 1),
		wake:   make(chan struct{}, 1),
	}
}

// Serve accepts apps' connections on l until ctx ends, then closes them
// all and returns nil (or an accept error).
func (k *Keeper) Serve(ctx context.Context, l *net.UnixListener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	p, err := newPoller(k.log)
	if err != nil {
		return fmt.Errorf("keep: poller: %w", err)
	}
	if k.epollWait != nil {
		p.wait = k.epollWait
	}
	k.poll = p
	k.wg.Go(p.run)
	k.wg.Go(func() { k.reconnectLoop(ctx) })
	k.wg.Go(func() { k.reportLoop(ctx) })
	k.wakeUp() // learn whether the bus is there
	delay := backoffMin
	for {
		nc, aerr := l.AcceptUnix()
		if aerr != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(aerr, syscall.EMFILE) || errors.Is(aerr, syscall.ENFILE) ||
				errors.Is(aerr, syscall.ECONNABORTED) || errors.Is(aerr, syscall.ENOBUFS) {
				// Out of fds for a moment: the apps already kept
				// matter more than this one.
				k.log.Warn("keep: accept failed; retrying", "err", aerr)
				select {
				case <-time.After(delay):
				case <-ctx.Done():
				}
				delay = min(2*delay, time.Second)
				continue
			}
			err = fmt.Errorf("keep: accept on %s: %w", l.Addr(), aerr)
			break
		}
		delay = backoffMin
		k.wg.Go(func() { k.serveConn(ctx, nc) })
	}
	cancel()
	k.mu.Lock()
	k.closing = true
	conns := slices.Clone(k.conns)
	k.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	k.poll.stop()
	k.wg.Wait()
	return err
}

// serveConn authenticates an app's connection, connects it to the bus
// (or holds it until the bus is back) and forwards what the app sends.
func (k *Keeper) serveConn(ctx context.Context, nc *net.UnixConn) {
	c := newConn(k, nc)
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	peerUID := -1
	if raw, err := nc.SyscallConn(); err == nil {
		raw.Control(func(fd uintptr) {
			if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
				peerUID, c.pid = int(cred.Uid), int(cred.Pid)
			}
		})
	}
	c.command, c.startTime = processInfo(c.pid)
	nc.SetDeadline(time.Now().Add(authTimeout))
	unixFD, err := serverAuth(c.app, k.guid, peerUID, k.uid)
	nc.SetDeadline(time.Time{})
	if !stop() || err != nil {
		if err != nil {
			k.log.Debug("keep: app not authenticated", "pid", c.pid, "uid", peerUID, "err", err)
		}
		c.app.close()
		return
	}
	c.unixFD = unixFD
	if err := c.app.block(); err != nil {
		k.log.Debug("keep: app connection failed", "pid", c.pid, "err", err)
		c.app.close()
		return
	}
	k.mu.Lock()
	if k.closing {
		k.mu.Unlock()
		c.app.close()
		return
	}
	k.conns = append(k.conns, c)
	c.gen = k.gen
	connect := k.up
	if connect {
		c.state = stConnecting
	}
	k.mu.Unlock()
	k.changed()
	if connect {
		k.connectFirst(ctx, c)
	}
	c.appStart()
}

// firstDialAttempts is how many times a new connection is connected to a
// bus that is there before the keeper takes the bus for gone.
const firstDialAttempts = 3

// connectFirst gives a new connection its first upstream connection.
func (k *Keeper) connectFirst(ctx context.Context, c *conn) {
	delay := backoffMin
	var err error
	for attempt := 1; ; attempt++ {
		up, guid, derr := k.dialUp(c.unixFD, readSize)
		if err = derr; err == nil {
			c.mu.Lock()
			c.busGUID = guid // its restarts are counted from this bus
			c.mu.Unlock()
			err = k.goLive(c, up, c.gen, nil, nil, nil)
		}
		if err == nil {
			return
		}
		if attempt == firstDialAttempts || !k.sameBus(c.gen) {
			break
		}
		// The bus is there, the same instance: this connection alone
		// failed (a dial that timed out, a backlog that was full). It is
		// tried again, rather than every kept connection taken down and
		// replayed.
		c.log().Debug("keep: connecting the app to the bus failed; trying again", "err", err, "attempt", attempt)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		if ctx.Err() != nil {
			break
		}
		delay *= 2
	}
	c.log().Debug("keep: holding the connection until the bus is back", "err", err)
	c.mu.Lock()
	if c.state == stConnecting {
		c.state = stHeld
	}
	c.mu.Unlock()
	k.markDown(c.gen)
	// Even if the bus went away before (and the reconnect loop may have
	// come and gone without seeing this connection held): the loop
	// connects held connections whenever it runs.
	k.wakeUp()
}

// dialUp connects and authenticates to the bus, with a read buffer of
// size bytes to start with.
func (k *Keeper) dialUp(unixFD bool, size int) (*sock, string, error) {
	if k.cfg.Address == nil {
		return nil, "", errors.New("keep: no bus address (Config.Address is nil)")
	}
	addr, err := k.cfg.Address()
	if err != nil {
		return nil, "", fmt.Errorf("keep: bus address: %w", err)
	}
	nc, err := dialBus(addr, dialTimeout)
	if err != nil {
		return nil, "", fmt.Errorf("keep: connect to %s: %w", addr, err)
	}
	s := newSockSize(nc, size)
	nc.SetDeadline(time.Now().Add(dialTimeout))
	guid, _, err := clientAuth(s, k.uid, unixFD)
	nc.SetDeadline(time.Time{})
	if err != nil {
		s.close()
		return nil, "", fmt.Errorf("keep: authenticate to %s: %w", addr, err)
	}
	return s, guid, nil
}

// goLive connects c to the bus through up: it delivers the signals and the
// messages the replay kept for the app, sends what the app queued, and
// starts forwarding. It fails if the bus went away since gen.
func (k *Keeper) goLive(c *conn, up *sock, gen uint64, signals, held []byte, heldFDs []int) error {
	// Nobody else reads or writes up yet: the reader takes it over.
	if err := up.block(); err != nil {
		up.close()
		closeFDs(heldFDs)
		return fmt.Errorf("keep: connection to the bus: %w", err)
	}
	k.mu.Lock()
	if k.gen != gen {
		k.mu.Unlock()
		up.close()
		closeFDs(heldFDs)
		return errors.New("keep: the bus went away again")
	}
	c.mu.Lock()
	k.mu.Unlock()
	if c.state == stClosed {
		c.mu.Unlock()
		up.close()
		closeFDs(heldFDs)
		return nil
	}
	c.up, c.gen, c.state = up, gen, stLive
	nm := k.names.Load()
	var h header
	// Batches of their own: the forwarding of the bus that
	// went away may still be sending its own. What the app is told goes
	// out before the bus's replies can (the reader starts below).
	toApp := &batch{}
	toApp.reset(nil, 0)
	toApp.copied()
	toApp.b = append(toApp.b, signals...)
	toApp.src = held
	for pos := 0; pos < len(held); {
		n, _ := msgLen(held[pos:])
		msg := held[pos : pos+n]
		if parseHeader(msg, &h) == nil {
			fds := heldFDs[:min(int(h.unixFDs), len(heldFDs))]
			heldFDs = heldFDs[len(fds):]
			c.busMsg(toApp, msg, pos, &h, slices.Clone(fds), nm)
		}
		pos += n
	}
	// The queue is this batch's from here: taken out of c before c.mu is
	// let go, so that nothing else (close, toDown) closes its fds or
	// answers its calls too, and what the app sends meanwhile is queued
	// anew.
	queue, fds := c.queue, c.queueFDs
	c.queue, c.queueFDs = nil, nil
	out := &batch{}
	out.reset(queue, 0)
	for pos := 0; pos < len(queue); {
		n, _ := msgLen(queue[pos:])
		msg := queue[pos : pos+n]
		if parseHeader(msg, &h) == nil {
			mf := fds[:min(int(h.unixFDs), len(fds))]
			fds = fds[len(mf):]
			c.appMsg(out, msg, pos, &h, slices.Clone(mf), nm)
		}
		pos += n
	}
	closeFDs(fds) // none of a message's
	up.wmu.Lock()
	c.mu.Unlock()
	err := up.send(out, true, time.Time{})
	up.wmu.Unlock()
	if err != nil {
		c.log().Debug("keep: sending what the app queued failed", "err", err)
	}
	// Told before the bus's messages can come: their turns come after.
	c.tell(toApp)
	k.wg.Go(func() { c.busStart(up, gen) })
	return nil
}

// liveOn reports whether c is live on the upstream up.
func (c *conn) liveOn(up *sock) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.up == up && c.state == stLive
}

// upstreamLost acts on the failure of c's connection to the bus: either
// the bus went away (every kept connection goes down and the keeper
// reconnects) or the bus closed this connection alone (so does the keeper,
// to the app).
func (k *Keeper) upstreamLost(c *conn, up *sock, gen uint64, cause error) {
	c.mu.Lock()
	mine := c.up == up && c.state == stLive
	c.mu.Unlock()
	if !mine {
		return // closed by the keeper itself
	}
	k.mu.Lock()
	guid, closing := k.busGUID, k.closing
	k.mu.Unlock()
	if closing {
		return
	}
	if errors.Is(cause, errProtocol) {
		c.log().Warn("keep: the bus sent what is not D-Bus; disconnecting the app", "err", cause)
		c.disconnect()
		return
	}
	// The same bus still answering means it dropped this connection
	// alone, as it does to a client that broke its rules.
	if s, err := k.probeGUID(); err == nil && s == guid && guid != "" {
		c.log().Info("keep: the bus closed the app's connection", "err", cause)
		c.disconnect()
		return
	}
	k.markDown(gen)
	c.down() // if gen was already stale
	k.wakeUp()
}

// sameBus reports whether the bus instance gen is up and still answers.
func (k *Keeper) sameBus(gen uint64) bool {
	k.mu.Lock()
	up, guid := k.up && k.gen == gen, k.busGUID
	k.mu.Unlock()
	if !up || guid == "" {
		return false
	}
	g, err := k.probeGUID()
	return err == nil && g == guid
}

// probeGUID connects to the bus to learn its guid.
func (k *Keeper) probeGUID() (string, error) {
	s, guid, err := k.dialUp(false, smallRead)
	if err != nil {
		return "", err
	}
	s.close()
	return guid, nil
}

// markDown records that the bus instance gen went away: every live
// connection goes down and the reconnect loop starts.
func (k *Keeper) markDown(gen uint64) {
	k.mu.Lock()
	if gen != k.gen {
		k.mu.Unlock()
		return
	}
	k.gen++
	wasUp := k.up
	k.up = false
	conns := slices.Clone(k.conns)
	sentinel := k.sentinel
	k.sentinel = nil
	k.mu.Unlock()
	if sentinel != nil {
		sentinel.close()
	}
	if wasUp {
		k.log.Info("keep: the bus went away; holding the apps' connections", "apps", len(conns))
	}
	// Every connection down first (no I/O), then the reconnect loop
	// may start, then the apps are told: an app slow to read must not
	// hold up the others.
	replies := make([]*batch, len(conns))
	for i, c := range conns {
		c.mu.Lock()
		if c.state == stLive || c.state == stReplay {
			replies[i] = c.toDown()
		}
		c.mu.Unlock()
	}
	k.changed()
	k.wakeUp()
	for i, c := range conns {
		if replies[i] != nil {
			c.tell(replies[i])
		}
	}
}

func (k *Keeper) currentGen() uint64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.gen
}

func (k *Keeper) wakeUp() {
	select {
	case k.wake <- struct{}{}:
	default:
	}
}

// changed asks for a report; reports are coalesced.
func (k *Keeper) changed() {
	select {
	case k.notify <- struct{}{}:
	default:
	}
}

// remove takes c out of the keeper.
func (k *Keeper) remove(c *conn) {
	k.mu.Lock()
	k.conns = slices.DeleteFunc(k.conns, func(x *conn) bool { return x == c })
	k.mu.Unlock()
	k.rebuildNames()
	k.changed()
}

// rebuildNames recomputes the map of unique names from the kept
// connections.
func (k *Keeper) rebuildNames() {
	k.mu.Lock()
	defer k.mu.Unlock()
	var m *nameMap
	if k.aliases != nil {
		m = &nameMap{toStable: maps.Clone(k.aliases.toStable), toCurrent: maps.Clone(k.aliases.toCurrent)}
	}
	for _, c := range k.conns {
		c.mu.Lock()
		if c.stable != "" && c.current != "" && c.stable != c.current {
			if m == nil {
				m = &nameMap{toStable: map[string]string{}, toCurrent: map[string]string{}}
			}
			m.toStable[c.current] = c.stable
			m.toCurrent[c.stable] = c.current
		}
		c.mu.Unlock()
	}
	k.names.Store(m)
}

// reconnectLoop reconnects to the bus whenever it went away, with backoff.
func (k *Keeper) reconnectLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-k.wake:
		}
		delay := backoffMin
		for attempt := 0; ; attempt++ {
			err := k.reconnect(ctx)
			if err == nil {
				break
			}
			if attempt == 0 || attempt%20 == 0 {
				k.log.Debug("keep: bus not back yet", "err", err, "attempt", attempt)
			}
			t := time.NewTimer(delay)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			delay = min(2*delay, backoffMax)
		}
	}
}

// Report returns the keeper's account now.
func (k *Keeper) Report() control.KeptReport {
	k.mu.Lock()
	conns := slices.Clone(k.conns)
	rep := control.KeptReport{Bus: k.cfg.Bus, Keeper: os.Getpid(), Up: k.up, Apps: []control.KeptApp{}}
	k.mu.Unlock()
	byPID := map[int]int{}
	for _, c := range conns {
		c.mu.Lock()
		i, ok := byPID[c.pid]
		if !ok {
			i = len(rep.Apps)
			byPID[c.pid] = i
			rep.Apps = append(rep.Apps, control.KeptApp{
				PID: c.pid, StartTime: c.startTime, Command: c.command, Bus: k.cfg.Bus, Since: c.since,
				UniqueNames: []string{},
			})
		}
		a := &rep.Apps[i]
		a.Connections++
		if c.stable != "" {
			a.UniqueNames = append(a.UniqueNames, c.stable)
		}
		for n := range c.owned {
			a.Names = append(a.Names, n)
		}
		a.Restarts = max(a.Restarts, c.restarts)
		if c.lastReplay != nil && (a.LastReplay == nil || c.lastReplay.Time.After(a.LastReplay.Time)) {
			a.LastReplay = c.lastReplay
		}
		c.mu.Unlock()
	}
	for i := range rep.Apps {
		a := &rep.Apps[i]
		slices.Sort(a.Names)
		if a.LastReplay != nil {
			r := *a.LastReplay
			a.LastReplay = &r
			a.Lost = slices.Clone(r.Lost)
		}
	}
	return rep
}

// reportLoop calls Config.Report, one report at a time, until ctx ends.
func (k *Keeper) reportLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-k.notify:
		}
		if k.cfg.Report == nil {
			k.mu.Lock()
			k.replays = nil
			k.mu.Unlock()
			continue
		}
		rep := k.Report()
		k.mu.Lock()
		rep.Replays, k.replays = k.replays, nil
		k.mu.Unlock()
		k.cfg.Report(rep)
	}
}

// processInfo reads a process's name and start time from /proc.
func processInfo(pid int) (command string, startTime uint64) {
	if pid <= 0 {
		return "", 0
	}
	p := "/proc/" + strconv.Itoa(pid)
	if b, err := os.ReadFile(p + "/comm"); err == nil {
		command = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile(p + "/stat"); err == nil {
		// The name in parentheses may hold spaces; fields count from
		// after its closing parenthesis (field 3 is the first there).
		if i := strings.LastIndexByte(string(b), ')'); i >= 0 {
			f := strings.Fields(string(b[i+1:]))
			if len(f) > 19 {
				startTime, _ = strconv.ParseUint(f[19], 10, 64)
			}
		}
	}
	return command, startTime
}
