package keep

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"busmedic/relaunch/control"
)

// connState is where an app's connection stands with the bus.
type connState int

const (
	// stHeld: authenticated, never connected upstream; the app's
	// messages (its Hello first) wait for the bus to come back.
	stHeld connState = iota
	// stConnecting: its first upstream connection is being made.
	stConnecting
	// stLive: messages flow both ways.
	stLive
	// stDown: the bus went away; calls get NoServer, the rest is dropped.
	stDown
	// stReplay: the bus is back and the keeper replays; the app's
	// messages wait for the end of the replay.
	stReplay
	// stClosed: the app is gone.
	stClosed
)

// Error names the keeper answers with.
const (
	errNoServer = "org.freedesktop.DBus.Error.NoServer"
)

// Limits on what one connection makes the keeper remember.
const (
	// maxQueue bounds the bytes an app may send while its connection
	// waits for the bus; past it the app is disconnected, as the bus
	// would for its own queue.
	maxQueue = 64 << 20
	// maxOwed and maxOwedBatches bound what the keeper itself has to
	// tell an app that does not read (NoServer errors, the signals of
	// replays), kept for it meanwhile. A real bus never gives up on a
	// client for being slow: it queues what the client does not read,
	// and only past a quota (dbus-daemon's max_outgoing_bytes, 1 GB on
	// the session bus; dbus-broker's per-user quota) it refuses more
	// (dbus-daemon: LimitsExceeded to the sender) or, for a reply or a
	// signal the client asked for, disconnects it (dbus-broker: "does
	// not have the resources to receive a reply it requested"). What the
	// keeper tells an app is such replies and signals, so past these
	// bounds the app is disconnected. Messages from the bus are not
	// counted: for those the keeper stops reading the app's upstream,
	// and the bus queues them and applies its own limits.
	maxOwed        = 16 << 20
	maxOwedBatches = 1024
	// maxNames bounds the names remembered as watched or talked to.
	maxNames = 4096
)

// nameFlagDoNotQueue is RequestName's DBUS_NAME_FLAG_DO_NOT_QUEUE.
const nameFlagDoNotQueue = 4

// busCall kinds: the app's calls to the bus driver the keeper follows.
const (
	callHello = iota + 1
	callAddMatch
	callRemoveMatch
	callRequestName
	callReleaseName
	callBecomeMonitor
	callGetNameOwner
	callNameHasOwner
	callListQueuedOwners
	callListNames
	callOther
)

// turns orders the writers of an app's socket, first come first served.
// A writer takes its turn (take) while it holds the connection's lock, so
// that batches reach the app in the order they were read, and waits for
// it (on the channel take returns) after letting go of that lock: an app
// that does not read makes its own writers wait, never a lock that
// others need (markDown, Report, the replay take every connection's).
// Waiting for a turn ends when the turns before it end, which an app
// that does not read ends by being disconnected (its socket shut, every
// write fails at once).
type turns struct {
	mu      sync.Mutex
	busy    bool
	waiting []chan struct{}
}

// take returns nil if the socket is the caller's now, or a channel
// closed when it is. Either way the caller calls done once it is through.
// Only a writer that must wait allocates.
func (t *turns) take() chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.busy {
		t.busy = true
		return nil
	}
	ch := make(chan struct{})
	t.waiting = append(t.waiting, ch)
	return ch
}

// done hands the socket to the next writer in line.
func (t *turns) done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.waiting) == 0 {
		t.busy = false
		return
	}
	next := t.waiting[0]
	t.waiting[0] = nil
	t.waiting = t.waiting[1:]
	close(next)
}

// yourTurn is a turn already had.
var yourTurn = func() chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}()

// owed is a batch the keeper tells an app, waiting for the app to read.
type owed struct {
	b    *batch
	turn chan struct{}
}

// busCall is a call of the app to the bus driver waiting for its reply.
type busCall struct {
	kind  int
	arg   string // the rule or name
	flags uint32
	rules []string // BecomeMonitor's
	// silent: the app asked for no reply; the keeper asked for one to
	// learn the outcome and swallows it.
	silent bool
}

// conn is one connection of an app through the keeper.
type conn struct {
	k         *Keeper
	app       *sock
	unixFD    bool
	pid       int
	startTime uint64
	command   string
	since     time.Time
	closeOnce sync.Once

	// mu guards what follows. Lock order: Keeper.mu, conn.mu, then an
	// upstream's sock.wmu, omu, turns.mu (the app's writers wait for
	// their turn holding none of these).
	mu    sync.Mutex
	state connState
	up    *sock
	gen   uint64
	// stable is the unique name the app knows; current is its name on
	// the bus now (the same until a restart).
	stable, current string
	monitor         bool
	monitorRules    []string
	monitorFlags    uint32
	rules           map[string]int    // canonical rule -> AddMatch count
	requested       map[string]uint32 // names asked for (owned or queued) -> flags
	owned           map[string]bool
	watched         map[string]bool   // names it asked about or matches NameOwnerChanged of
	lastOwner       map[string]string // what it was last told of a watched name's owner
	talked          map[string]bool   // unique names it called
	pending         map[uint32]struct{}
	busCalls        map[uint32]busCall
	queue           []byte
	queueFDs        []int
	dropped         int
	serial          uint32 // of the messages the keeper writes to the app
	restarts        int
	busGUID         string // of the bus instance it was last connected to
	lastReplay      *control.Replay
	replayFails     int

	// Scratch of the forwarding from the app (the poller, or the
	// goroutine it left a batch to), reused for every batch. (The
	// forwarding from the bus has its scratch in each upstream socket:
	// the batch of the upstream of a bus that went away may still be on
	// its way to the app when the next upstream's first comes.)
	toBus, replies batch

	// appTurn orders the writers to the app.
	appTurn turns
	// omu guards what the keeper owes the app (tell), in the order of
	// the batches' turns; drain writes it, one goroutine at a time.
	omu         sync.Mutex
	owed        []owed
	owedBytes   int // of the batches owed, the one drain writes too
	owedBatches int // the same
	owedDrainer bool
}

func newConn(k *Keeper, nc *net.UnixConn) *conn {
	return &conn{
		k:         k,
		app:       newSock(nc),
		since:     time.Now(),
		rules:     map[string]int{},
		requested: map[string]uint32{},
		owned:     map[string]bool{},
		watched:   map[string]bool{},
		lastOwner: map[string]string{},
		talked:    map[string]bool{},
		pending:   map[uint32]struct{}{},
		busCalls:  map[uint32]busCall{},
	}
}

func (c *conn) log() *slog.Logger {
	return c.k.log.With("pid", c.pid, "command", c.command, "unique_name", c.stable)
}

// appStart forwards what authentication read past its end, then has the
// poller read the app's side.
func (c *conn) appStart() {
	if c.app.end != c.app.start {
		if err := c.fromApp(true); err != nil {
			c.appGone(err)
			return
		}
	}
	if err := c.k.poll.add(pitem{c: c, s: c.app}); err != nil {
		c.close()
	}
}

// errNotDBus: the app broke the protocol.
var errNotDBus = errors.New("keep: not D-Bus")

// errBusy: another goroutine holds what the poller would wait for.
var errBusy = errors.New("keep: busy")

// appReady reads and forwards what the app sent; the poller calls it
// when the app's side is readable.
func (c *conn) appReady() {
	err := c.app.fill(false)
	if err == nil {
		err = c.fromApp(false)
	}
	switch err {
	case nil, errAgain:
	case errBusy:
		// What was read waits for a goroutine that can wait.
		c.app.pause()
		c.k.wg.Go(func() {
			if err := c.fromApp(true); err != nil {
				c.appGone(err)
				return
			}
			c.app.resume()
		})
	default:
		c.app.pause()
		c.k.wg.Go(func() { c.appGone(err) })
	}
}

// appGone ends the connection after err on the app's side.
func (c *conn) appGone(err error) {
	switch {
	case errors.Is(err, errNotDBus):
		c.log().Warn("keep: app sent what is not D-Bus; disconnecting it", "err", err)
	case !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, syscall.ECONNRESET):
		c.log().Debug("keep: app connection failed", "err", err)
	}
	c.close()
}

// fromApp handles every complete message the app has sent. Unless wait,
// it returns errBusy without doing anything if c.mu is taken, and
// errAgain if it left the end of its work to a goroutine (which resumes
// the app's side when done).
func (c *conn) fromApp(wait bool) error {
	var h header
	if wait {
		c.mu.Lock()
	} else if !c.mu.TryLock() {
		return errBusy
	}
	out := &c.toBus
	out.reset(c.app.buf, c.app.start)
	c.replies.reset(nil, 0)
	nm := c.k.names.Load()
	for {
		msg, off, err := c.app.next()
		if err == nil && msg != nil {
			err = parseHeader(msg, &h)
		}
		var fds []int
		if err == nil && msg != nil && h.unixFDs > 0 {
			fds, err = c.app.takeFDs(nil, int(h.unixFDs))
		}
		if err != nil {
			// The fds of the messages before it go nowhere now.
			closeFDs(out.fds)
			out.fds = out.fds[:0]
			c.mu.Unlock()
			return fmt.Errorf("%w: %w", errNotDBus, err)
		}
		if msg == nil {
			break
		}
		switch c.state {
		case stLive:
			c.appMsg(out, msg, off, &h, fds, nm)
		case stDown:
			c.refuse(&c.replies, msg, &h)
			closeFDs(fds)
		case stClosed:
			closeFDs(fds)
		default: // held, connecting, replaying
			if len(c.queue)+len(msg) > maxQueue {
				c.mu.Unlock()
				closeFDs(fds)
				return fmt.Errorf("%w: too much sent while the bus was away", errNotDBus)
			}
			c.queue = append(c.queue, msg...)
			c.queueFDs = append(c.queueFDs, fds...)
		}
	}
	if up := c.up; up != nil && !out.empty() {
		// Take the upstream's write lock before letting go of the
		// connection's, so batches reach the bus in the order read.
		// A failed write means the bus is going away: the reader of
		// the upstream learns it and acts (the calls in this batch
		// are pending, and get NoServer then).
		if !wait && !up.wmu.TryLock() {
			c.app.pause()
			c.k.wg.Go(func() {
				up.wmu.Lock()
				c.mu.Unlock()
				c.toBusTail(up)
			})
			return errAgain
		}
		if wait {
			up.wmu.Lock()
		}
		c.mu.Unlock()
		if err := up.send(out, wait, time.Time{}); err == errAgain {
			c.app.pause()
			c.k.wg.Go(func() { c.toBusTail(up) })
			return errAgain
		}
		up.wmu.Unlock()
	} else {
		c.mu.Unlock()
	}
	return c.sendReplies(wait)
}

// toBusTail finishes the app's batch to the bus (up.wmu held) and what
// follows it, then resumes the app's side.
func (c *conn) toBusTail(up *sock) {
	up.send(&c.toBus, true, time.Time{})
	up.wmu.Unlock()
	c.sendReplies(true)
	c.app.resume()
}

// sendReplies writes to the app the keeper's answers to what fromApp
// read (c.replies), in their turn. The caller reads the app: with wait,
// it waits for its turn and the write (an app that does not read holds
// up its own connection only); without (the poller), it returns errAgain
// if it left the writing to a goroutine, which resumes the app's side
// when done.
func (c *conn) sendReplies(wait bool) error {
	b := &c.replies
	if b.empty() {
		return nil
	}
	turn := c.appTurn.take()
	if turn != nil {
		if !wait {
			c.app.pause()
			c.k.wg.Go(func() {
				<-turn
				c.repliesTail()
			})
			return errAgain
		}
		<-turn
	}
	err := c.app.send(b, wait, time.Time{})
	if err == errAgain {
		c.app.pause()
		c.k.wg.Go(c.repliesTail)
		return errAgain
	}
	c.appTurn.done()
	if err != nil {
		c.disconnect()
	}
	return nil
}

// repliesTail finishes sendReplies' write in its turn, then resumes the
// app's side.
func (c *conn) repliesTail() {
	err := c.app.send(&c.replies, true, time.Time{})
	c.appTurn.done()
	if err != nil {
		c.disconnect()
	}
	c.app.resume()
}

// tell writes to the app what the keeper says itself (NoServer errors,
// the signals of a replay), in its turn, from any goroutine, and never
// waits: the callers (markDown, the reconnect loop) work for every kept
// app, and one that does not read must not hold them up. What the app
// cannot take now is kept for it and written by drain, up to maxOwed
// (see there); b is the app's from here.
func (c *conn) tell(b *batch) {
	if b.empty() {
		closeFDs(b.fds)
		return
	}
	// The turn is taken under omu, so that the owed batches are in the
	// order of their turns: drain waits for each in that order.
	c.omu.Lock()
	turn := c.appTurn.take()
	if turn == nil {
		err := c.app.send(b, false, time.Time{})
		if err != errAgain {
			c.appTurn.done()
			c.omu.Unlock()
			if err != nil {
				c.disconnect()
			}
			return
		}
		turn = yourTurn
	}
	n := b.len() - b.pos
	over := c.owedBytes+n > maxOwed || c.owedBatches >= maxOwedBatches
	c.owed = append(c.owed, owed{b: b, turn: turn})
	c.owedBytes += n
	c.owedBatches++
	owedBytes, owedBatches := c.owedBytes, c.owedBatches
	start := !c.owedDrainer
	c.owedDrainer = true
	c.omu.Unlock()
	if over {
		c.log().Warn("keep: the app does not read what the keeper tells it, past its quota; disconnecting it, as the bus would",
			"owed_bytes", owedBytes, "owed_batches", owedBatches)
		// The batch stays owed: drain hands its turn on.
		c.disconnect()
	}
	if start {
		c.k.wg.Go(c.drain)
	}
}

// drain writes what the keeper owes the app, each batch in its turn,
// until it owes nothing. A write fails at once once the app is
// disconnected, so drain ends with the connection.
func (c *conn) drain() {
	for {
		c.omu.Lock()
		if len(c.owed) == 0 {
			c.owedDrainer = false
			c.omu.Unlock()
			return
		}
		o := c.owed[0]
		c.owed[0] = owed{}
		c.owed = c.owed[1:]
		c.omu.Unlock()
		<-o.turn
		n := o.b.len() - o.b.pos
		err := c.app.send(o.b, true, time.Time{})
		c.appTurn.done()
		c.omu.Lock()
		c.owedBytes -= n
		c.owedBatches--
		c.omu.Unlock()
		if err != nil {
			c.disconnect()
		}
	}
}

// disconnect ends the connection from any goroutine, holding any lock:
// its socket is shut at once (so that every write to it fails and every
// wait for a turn ends), the rest of close is left to a goroutine.
func (c *conn) disconnect() {
	c.app.shut()
	c.k.wg.Go(c.close)
}

// refuse answers a call made while the bus is away into replies, at
// once, so the app does not wait for a reply that cannot come; other
// messages are dropped. The caller holds c.mu.
func (c *conn) refuse(replies *batch, msg []byte, h *header) {
	if h.typ != typeMethodCall || h.flags&flagNoReplyExpected != 0 {
		c.dropped++
		return
	}
	replies.copied()
	replies.b = c.errorReply(replies.b, h.serial, errNoServer,
		"the bus is restarting; busmedic keeps this connection and replays it when the bus is back")
}

// errorReply appends an error from the bus driver to the app's call serial.
func (c *conn) errorReply(dst []byte, serial uint32, name, text string) []byte {
	w := writer{}
	w.str(text)
	c.serial++
	return appendMessage(dst, typeError, flagNoReplyExpected, c.serial, &fields{
		errName: name, replySerial: serial, dest: c.stable, sender: busName, sig: "s",
	}, w.b)
}

// appMsg forwards one message of the app to the bus, following what it
// asks of the bus driver. The caller holds c.mu.
func (c *conn) appMsg(out *batch, msg []byte, off int, h *header, fds []int, nm *nameMap) {
	if h.typ == typeMethodCall && h.flags&flagNoReplyExpected == 0 {
		c.pending[h.serial] = struct{}{}
	}
	start := out.len()
	if h.dest.ok() {
		dest := h.dest.in(msg)
		switch {
		case h.typ == typeMethodCall && string(dest) == busName:
			if body, clear := c.busCall(msg, h, nm); body != nil || clear {
				out.copied()
				out.b = rewrite(out.b, msg, h, "", "", body)
				if clear {
					out.b[start+2] &^= flagNoReplyExpected
					delete(c.pending, h.serial)
				}
				out.withFDs(start, fds)
				return
			}
		case len(dest) > 0 && dest[0] == ':':
			if h.typ == typeMethodCall && !c.talked[string(dest)] && len(c.talked) < maxNames {
				c.talked[string(dest)] = true
			}
			if nm != nil {
				if cur, ok := nm.toCurrent[string(dest)]; ok {
					out.copied()
					out.b = rewrite(out.b, msg, h, cur, "", nil)
					out.withFDs(start, fds)
					return
				}
			}
		}
	}
	out.pass(off, off+len(msg))
	out.withFDs(start, fds)
}

// busCall follows a call of the app to the bus driver. It returns a new
// body when names in it must be mapped to the current bus's, and clear
// when the keeper asks for the reply the app did not want.
func (c *conn) busCall(msg []byte, h *header, nm *nameMap) (body []byte, clear bool) {
	member := h.member.in(msg)
	bc := busCall{silent: h.flags&flagNoReplyExpected != 0}
	toCurrent := func(name string) string {
		if nm != nil {
			return nm.toCurrent[name]
		}
		return ""
	}
	oneString := func() (string, *reader) {
		r := bodyReader(msg, h, "s")
		if r == nil {
			return "", nil
		}
		s := r.str()
		if r.err != nil {
			return "", nil
		}
		return s, r
	}
	switch string(member) {
	case "Hello":
		bc.kind = callHello
	case "AddMatch", "RemoveMatch":
		rule, r := oneString()
		if r == nil {
			return nil, false
		}
		bc.kind, bc.arg = callAddMatch, rule
		if string(member) == "RemoveMatch" {
			bc.kind = callRemoveMatch
		}
		if nm != nil {
			if mapped := mapMatch(rule, toCurrent); mapped != rule {
				w := writer{big: h.big}
				w.str(mapped)
				body = w.b
			}
		}
	case "RequestName":
		r := bodyReader(msg, h, "su")
		if r == nil {
			return nil, false
		}
		bc.kind, bc.arg, bc.flags = callRequestName, r.str(), r.u32()
		if r.err != nil {
			return nil, false
		}
	case "ReleaseName":
		name, r := oneString()
		if r == nil {
			return nil, false
		}
		bc.kind, bc.arg = callReleaseName, name
	case "BecomeMonitor":
		r := bodyReader(msg, h, "asu")
		if r == nil {
			return nil, false
		}
		bc.kind, bc.rules, bc.flags = callBecomeMonitor, r.strArray(), r.u32()
		if r.err != nil {
			return nil, false
		}
		if nm != nil {
			mapped := make([]string, len(bc.rules))
			changed := false
			for i, rule := range bc.rules {
				mapped[i] = mapMatch(rule, toCurrent)
				changed = changed || mapped[i] != rule
			}
			if changed {
				w := writer{big: h.big}
				w.strArray(mapped)
				w.u32(bc.flags)
				body = w.b
			}
		}
	case "ListNames":
		// Its reply lists kept connections by their current names.
		bc.kind = callListNames
	case "GetNameOwner", "NameHasOwner", "ListQueuedOwners",
		"GetConnectionUnixUser", "GetConnectionUnixProcessID", "GetConnectionCredentials",
		"GetAdtAuditSessionData", "GetConnectionSELinuxSecurityContext", "GetConnectionUnixProcessFD":
		name, r := oneString()
		if r == nil {
			return nil, false
		}
		bc.kind, bc.arg = callOther, name
		switch string(member) {
		case "GetNameOwner":
			bc.kind = callGetNameOwner
		case "NameHasOwner":
			bc.kind = callNameHasOwner
		case "ListQueuedOwners":
			bc.kind = callListQueuedOwners
		}
		if (bc.kind == callGetNameOwner || bc.kind == callNameHasOwner) && !c.watched[name] && len(c.watched) < maxNames {
			c.watched[name] = true
		}
		if cur := toCurrent(name); cur != "" {
			w := writer{big: h.big}
			w.str(cur)
			body = w.b
		}
	default:
		return nil, false
	}
	if bc.silent {
		switch bc.kind {
		case callAddMatch, callRemoveMatch, callRequestName, callReleaseName, callBecomeMonitor:
			clear = true
		default:
			return body, false // nothing to learn from a reply
		}
	}
	c.busCalls[h.serial] = bc
	return body, clear
}

// busStart forwards what the replay read past its last reply, then has
// the poller read up.
func (c *conn) busStart(up *sock, gen uint64) {
	if up.end != up.start {
		if err := c.fromBus(up, true); err != nil {
			c.k.upstreamLost(c, up, gen, err)
			return
		}
	}
	if err := c.k.poll.add(pitem{c: c, s: up, bus: true, gen: gen}); err != nil {
		c.k.upstreamLost(c, up, gen, err)
	}
}

// busReady reads and forwards what the bus sent on up; the poller calls
// it when up is readable.
func (c *conn) busReady(up *sock, gen uint64) {
	err := up.fill(false)
	if err == nil {
		err = c.fromBus(up, false)
	}
	switch err {
	case nil, errAgain:
	case errBusy:
		up.pause()
		c.k.wg.Go(func() {
			if err := c.fromBus(up, true); err != nil {
				c.k.upstreamLost(c, up, gen, err)
				return
			}
			up.resume()
		})
	default:
		up.pause()
		c.k.wg.Go(func() { c.k.upstreamLost(c, up, gen, err) })
	}
}

// fromBus handles every complete message the bus has sent on up. Unless
// wait, it returns errBusy without doing anything if c.mu is taken, and
// errAgain if it left the writing to a goroutine (which resumes up when
// done).
func (c *conn) fromBus(up *sock, wait bool) error {
	var h header
	if wait {
		c.mu.Lock()
	} else if !c.mu.TryLock() {
		return errBusy
	}
	if c.up != up {
		c.mu.Unlock()
		return net.ErrClosed
	}
	out := &up.out
	out.reset(up.buf, up.start)
	nm := c.k.names.Load()
	for {
		msg, off, err := up.next()
		if err == nil && msg != nil {
			err = parseHeader(msg, &h)
		}
		var fds []int
		if err == nil && msg != nil && h.unixFDs > 0 {
			fds, err = up.takeFDs(nil, int(h.unixFDs))
		}
		if err != nil {
			closeFDs(out.fds)
			out.fds = out.fds[:0]
			c.mu.Unlock()
			return err
		}
		if msg == nil {
			break
		}
		c.busMsg(out, msg, off, &h, fds, nm)
	}
	if out.empty() {
		c.mu.Unlock()
		closeFDs(out.fds)
		out.fds = out.fds[:0]
		return nil
	}
	// The turn is taken under c.mu, so that batches reach the app in
	// the order read, and waited for without it (see turns).
	turn := c.appTurn.take()
	c.mu.Unlock()
	if turn != nil {
		if !wait {
			up.pause()
			c.k.wg.Go(func() {
				<-turn
				c.toAppTail(up)
			})
			return errAgain
		}
		<-turn
	}
	err := c.app.send(out, wait, time.Time{})
	if err == errAgain {
		up.pause()
		c.k.wg.Go(func() { c.toAppTail(up) })
		return errAgain
	}
	c.appTurn.done()
	if err != nil {
		c.disconnect()
	}
	return nil
}

// toAppTail finishes the bus's batch to the app in its turn, then
// resumes up. It waits as long as the app does not read: meanwhile up
// is not read, and the bus queues what comes for the app, as it would
// for the app itself, under its own limits.
func (c *conn) toAppTail(up *sock) {
	err := c.app.send(&up.out, true, time.Time{})
	c.appTurn.done()
	if err != nil {
		c.disconnect()
	}
	up.resume()
}

// busMsg passes one message of the bus on to the app, following the bus
// driver's replies and name signals and showing the app the names it
// knows. The caller holds c.mu.
func (c *conn) busMsg(out *batch, msg []byte, off int, h *header, fds []int, nm *nameMap) {
	start := out.len()
	if c.monitor {
		// A monitor sees everyone's traffic as it is.
		out.pass(off, off+len(msg))
		out.withFDs(start, fds)
		return
	}
	if h.typ == typeMethodReturn || h.typ == typeError {
		delete(c.pending, h.replySerial)
	}
	var body []byte
	if h.sender.ok() && string(h.sender.in(msg)) == busName {
		var consume bool
		body, consume = c.driverMsg(msg, h, nm)
		if consume {
			closeFDs(fds)
			return
		}
	}
	var dest, sender string
	if nm != nil {
		if h.dest.ok() && c.current != c.stable && string(h.dest.in(msg)) == c.current {
			dest = c.stable
		}
		if h.sender.ok() {
			sender = nm.toStable[string(h.sender.in(msg))]
		}
	}
	if body != nil || dest != "" || sender != "" {
		out.copied()
		out.b = rewrite(out.b, msg, h, dest, sender, body)
	} else {
		out.pass(off, off+len(msg))
	}
	out.withFDs(start, fds)
}

// driverMsg follows a message of the bus driver to the app: the reply to
// a call it follows, or a name signal. It returns a body with the names
// mapped to the ones the app knows, if any changed, and whether the
// message is the keeper's to swallow.
func (c *conn) driverMsg(msg []byte, h *header, nm *nameMap) (body []byte, consume bool) {
	toStable := func(name string) string {
		if nm != nil {
			if s, ok := nm.toStable[name]; ok {
				return s
			}
		}
		return name
	}
	switch h.typ {
	case typeMethodReturn, typeError:
		bc, ok := c.busCalls[h.replySerial]
		if !ok {
			return nil, false
		}
		delete(c.busCalls, h.replySerial)
		body = c.driverReply(msg, h, bc, toStable)
		return body, bc.silent
	case typeSignal:
		if !h.member.ok() || !h.iface.ok() || string(h.iface.in(msg)) != busName {
			return nil, false
		}
		switch string(h.member.in(msg)) {
		case "NameOwnerChanged":
			r := bodyReader(msg, h, "sss")
			if r == nil {
				return nil, false
			}
			name, old, nw := r.strBytes(), r.strBytes(), r.strBytes()
			if r.err != nil {
				return nil, false
			}
			if c.watched[string(name)] {
				c.lastOwner[string(name)] = toStable(string(nw))
			}
			if nm == nil {
				return nil, false
			}
			_, m0 := nm.toStable[string(name)]
			_, m1 := nm.toStable[string(old)]
			_, m2 := nm.toStable[string(nw)]
			if !m0 && !m1 && !m2 {
				return nil, false
			}
			w := writer{big: h.big}
			w.str(toStable(string(name)))
			w.str(toStable(string(old)))
			w.str(toStable(string(nw)))
			return w.b, false
		case "NameAcquired", "NameLost":
			r := bodyReader(msg, h, "s")
			if r == nil {
				return nil, false
			}
			name := r.str()
			if r.err != nil {
				return nil, false
			}
			if !strings.HasPrefix(name, ":") {
				if string(h.member.in(msg)) == "NameAcquired" {
					c.owned[name] = true
				} else {
					delete(c.owned, name)
					// An owner replaced by another waits in
					// the name's queue, unless it asked not
					// to: then it is still to be replayed.
					if c.requested[name]&nameFlagDoNotQueue != 0 {
						delete(c.requested, name)
					}
				}
				c.k.changed()
			}
			if s := toStable(name); s != name {
				w := writer{big: h.big}
				w.str(s)
				return w.b, false
			}
		}
	}
	return nil, false
}

// driverReply follows the bus driver's reply to the app's call bc.
func (c *conn) driverReply(msg []byte, h *header, bc busCall, toStable func(string) string) (body []byte) {
	ok := h.typ == typeMethodReturn
	switch bc.kind {
	case callHello:
		if r := bodyReader(msg, h, "s"); ok && r != nil {
			if name := r.str(); r.err == nil && c.stable == "" {
				c.stable, c.current = name, name
				c.k.changed()
				c.log().Debug("keep: app connected")
			}
		}
	case callAddMatch:
		if ok {
			c.rules[canonicalRule(bc.arg)]++
			if w := watchedName(bc.arg); w != "" && len(c.watched) < maxNames {
				c.watched[w] = true
			}
		}
	case callRemoveMatch:
		if ok {
			key := canonicalRule(bc.arg)
			if c.rules[key] <= 1 {
				delete(c.rules, key)
			} else {
				c.rules[key]--
			}
		}
	case callRequestName:
		if r := bodyReader(msg, h, "u"); ok && r != nil {
			switch v := r.u32(); {
			case r.err != nil:
			case v == 1 || v == 4: // primary owner, already owner
				c.requested[bc.arg] = bc.flags
				c.owned[bc.arg] = true
				c.k.changed()
			case v == 2: // in the queue
				c.requested[bc.arg] = bc.flags
			}
		}
	case callReleaseName:
		if ok {
			delete(c.requested, bc.arg)
			delete(c.owned, bc.arg)
			c.k.changed()
		}
	case callBecomeMonitor:
		if ok {
			c.monitor, c.monitorRules, c.monitorFlags = true, bc.rules, bc.flags
		}
	case callGetNameOwner:
		if !ok {
			c.lastOwner[bc.arg] = ""
			break
		}
		if r := bodyReader(msg, h, "s"); r != nil {
			owner := r.str()
			if r.err != nil {
				break
			}
			s := toStable(owner)
			c.lastOwner[bc.arg] = s
			if s != owner {
				w := writer{big: h.big}
				w.str(s)
				return w.b
			}
		}
	case callNameHasOwner:
		if r := bodyReader(msg, h, "b"); ok && r != nil {
			if has := r.u32(); r.err == nil && has == 0 {
				c.lastOwner[bc.arg] = ""
			}
		}
	case callListQueuedOwners, callListNames:
		if r := bodyReader(msg, h, "as"); ok && r != nil {
			owners := r.strArray()
			changed := false
			for i, o := range owners {
				if s := toStable(o); s != o {
					owners[i], changed = s, true
				}
			}
			if r.err == nil && changed {
				w := writer{big: h.big}
				w.strArray(owners)
				return w.b
			}
		}
	}
	return nil
}

// canonicalRule is the form a rule is counted under, so that a
// RemoveMatch written differently from its AddMatch still removes it.
func canonicalRule(rule string) string {
	kvs, err := parseMatch(rule)
	if err != nil {
		return rule
	}
	sort.SliceStable(kvs, func(i, j int) bool { return kvs[i].key < kvs[j].key })
	return formatMatch(kvs)
}

// down takes the connection off a bus that went away: its upstream is
// closed and every call still waiting for a reply gets NoServer.
func (c *conn) down() {
	c.mu.Lock()
	if c.state != stLive && c.state != stReplay {
		c.mu.Unlock()
		return
	}
	replies := c.toDown()
	c.mu.Unlock()
	c.tell(replies)
}

// toDown is down with c.mu held: it also answers the calls queued during
// a replay that did not finish. It returns the answers, for the caller to
// send once it has let go of c.mu.
func (c *conn) toDown() *batch {
	if c.up != nil {
		c.up.close()
		c.up = nil
	}
	c.state = stDown
	// Not c.replies: the app's reader may be sending that one now.
	replies := &batch{}
	replies.copied()
	serials := make([]uint32, 0, len(c.pending))
	for s := range c.pending {
		serials = append(serials, s)
	}
	slices.Sort(serials)
	for _, s := range serials {
		replies.b = c.errorReply(replies.b, s, errNoServer, "the bus went away before it answered")
	}
	clear(c.pending)
	clear(c.busCalls)
	var h header
	for pos := 0; pos < len(c.queue); {
		n, err := msgLen(c.queue[pos:])
		if err != nil || parseHeader(c.queue[pos:pos+n], &h) != nil {
			break
		}
		c.refuse(replies, c.queue[pos:pos+n], &h)
		pos += n
	}
	c.queue = c.queue[:0]
	closeFDs(c.queueFDs)
	c.queueFDs = c.queueFDs[:0]
	return replies
}

// close ends the connection: the app's side, the bus's, and its place in
// the keeper.
func (c *conn) close() {
	c.closeOnce.Do(func() {
		c.k.remove(c)
		c.mu.Lock()
		c.state = stClosed
		if c.up != nil {
			c.up.close()
			c.up = nil
		}
		closeFDs(c.queueFDs)
		c.queue, c.queueFDs = nil, nil
		c.mu.Unlock()
		c.app.close()
		c.log().Debug("keep: app disconnected")
	})
}
