package keep

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"busmedic/relaunch/control"
)

// ownSerialBase is where the serials of the keeper's own calls start. They
// are only ever sent on an upstream connection while the app's messages
// are held back (a replay), and every one is answered before the app's
// go out, so they cannot be confused with the app's; starting high keeps
// them apart in a trace too.
const ownSerialBase = 0x80000000

// ownReply is the bus driver's answer to one of the keeper's calls.
type ownReply struct {
	ok      bool
	errName string
	big     bool
	body    []byte
}

func (r *ownReply) str() string {
	if r == nil || !r.ok {
		return ""
	}
	rd := reader{b: r.body, big: r.big}
	s := rd.str()
	if rd.err != nil {
		return ""
	}
	return s
}

func (r *ownReply) u32() uint32 {
	if r == nil || !r.ok {
		return 0
	}
	rd := reader{b: r.body, big: r.big}
	return rd.u32()
}

// replayConn is the replay of one kept connection onto the bus that came
// back: its new upstream, the keeper's calls on it, and what the bus sent
// the app meanwhile.
type replayConn struct {
	c       *conn
	up      *sock
	serial  uint32
	out     []byte
	replies map[uint32]*ownReply
	waiting int
	held    []byte
	heldFDs []int
	// dropNOC are names whose NameOwnerChanged the replay itself reports
	// to the app: the bus's own, sent before the keeper asked for the
	// name's owner, are stale.
	dropNOC map[string]bool
	kept    map[string]bool // current names of all kept connections
	current string
	guid    string // of the bus instance up is connected to

	// What the connection had asked of the bus, copied at the start.
	stable       string
	rules        map[string]int
	requested    map[string]uint32
	owned        map[string]bool
	monitor      bool
	monitorRules []string
	monitorFlags uint32
	watched      map[string]bool
	lastOwner    map[string]string
	talked       map[string]bool
	dropped      int // messages dropped while the bus was away

	// requests are the serials of the replayed RequestName calls, by
	// name; queued are the names it owned that someone else owns now
	// while it waits in their queue (answered 2): lost, but still asked
	// for.
	requests map[string]uint32
	queued   map[string]bool

	res control.Replay
	err error
}

func (rc *replayConn) call(member, sig string, body []byte) uint32 {
	iface := busName
	if member == "BecomeMonitor" {
		iface = busName + ".Monitoring"
	}
	rc.serial++
	rc.out = appendMessage(rc.out, typeMethodCall, 0, rc.serial, &fields{
		path: "/org/freedesktop/DBus", iface: iface, member: member, dest: busName, sig: sig,
	}, body)
	rc.replies[rc.serial] = nil
	rc.waiting++
	return rc.serial
}

func oneStr(s string) []byte {
	w := writer{}
	w.str(s)
	return w.b
}

// wait sends the calls made so far and reads until all are answered,
// keeping the other messages for the app.
func (rc *replayConn) wait() error {
	if err := rc.up.write(rc.out); err != nil {
		return fmt.Errorf("keep: replay: write: %w", err)
	}
	rc.out = rc.out[:0]
	rc.up.c.SetReadDeadline(time.Now().Add(callTimeout))
	defer rc.up.c.SetReadDeadline(time.Time{})
	var h header
	for rc.waiting > 0 {
		msg, _, err := rc.up.next()
		if err != nil {
			return err
		}
		if msg == nil {
			if err := rc.up.fill(true); err != nil {
				return fmt.Errorf("keep: replay: read: %w", err)
			}
			continue
		}
		if err := parseHeader(msg, &h); err != nil {
			return err
		}
		fds, err := rc.up.takeFDs(nil, int(h.unixFDs))
		if err != nil {
			return err
		}
		fromBus := h.sender.ok() && string(h.sender.in(msg)) == busName
		if r, mine := rc.replies[h.replySerial]; fromBus && mine && r == nil &&
			(h.typ == typeMethodReturn || h.typ == typeError) {
			rep := &ownReply{ok: h.typ == typeMethodReturn, big: h.big, body: slices.Clone(msg[h.bodyStart:])}
			if h.errName.ok() {
				rep.errName = h.errName.str(msg)
			}
			rc.replies[h.replySerial] = rep
			rc.waiting--
			closeFDs(fds)
			continue
		}
		if fromBus && rc.stale(msg, &h) {
			closeFDs(fds)
			continue
		}
		rc.held = append(rc.held, msg...)
		rc.heldFDs = append(rc.heldFDs, fds...)
	}
	return nil
}

// stale reports whether a signal of the bus driver sent during the replay
// says nothing new to the app: its own name coming back, a name it
// already owned, the comings and goings of kept connections (which never
// went away as the apps see it), and owner changes the replay reports
// itself.
func (rc *replayConn) stale(msg []byte, h *header) bool {
	if h.typ != typeSignal || !h.iface.ok() || string(h.iface.in(msg)) != busName {
		return false
	}
	switch string(h.member.in(msg)) {
	case "NameAcquired":
		r := bodyReader(msg, h, "s")
		if r == nil {
			return false
		}
		name := r.str()
		if r.err != nil {
			return false
		}
		if name == rc.current {
			return true
		}
		// A name it owned comes back with its replayed RequestName,
		// whose reply follows: stale. Once that reply has come (the
		// app was put in the queue), a NameAcquired is the owner
		// letting go: news the app must get.
		serial, asked := rc.requests[name]
		return rc.owned[name] && (!asked || rc.replies[serial] == nil)
	case "NameOwnerChanged":
		r := bodyReader(msg, h, "sss")
		if r == nil {
			return false
		}
		name, old, nw := r.str(), r.str(), r.str()
		return r.err == nil && (rc.dropNOC[name] || rc.kept[name] || rc.kept[old] || rc.kept[nw])
	}
	return false
}

// reconnect brings the keeper back onto the bus: it replays every kept
// connection that went down and connects those that waited for the bus.
func (k *Keeper) reconnect(ctx context.Context) error {
	guid, err := k.probeGUID()
	if err != nil {
		return err
	}
	began := time.Now()
	k.mu.Lock()
	gen := k.gen
	conns := slices.Clone(k.conns)
	k.mu.Unlock()
	var down []*conn
	for _, c := range conns {
		c.mu.Lock()
		if c.state == stDown {
			c.state = stReplay
			down = append(down, c)
		}
		c.mu.Unlock()
	}
	var replays []control.Replay
	if len(down) > 0 {
		if replays, err = k.replay(ctx, gen, guid, began, down); err != nil {
			return err
		}
	}
	if len(replays) > 0 {
		// Kept now, before the sentinel's dial: should it fail, the
		// retry finds these connections live and replays nothing, and
		// the daemon must still learn of this replay.
		k.mu.Lock()
		if k.gen == gen {
			k.replays = append(k.replays, replays...)
		}
		k.mu.Unlock()
	}
	sentinel, err := k.dialSentinel()
	if err != nil {
		return err
	}
	k.mu.Lock()
	if k.gen != gen || k.closing {
		k.mu.Unlock()
		sentinel.close()
		return errors.New("keep: the bus went away during the replay")
	}
	k.up, k.busGUID = true, guid
	old := k.sentinel
	k.sentinel = sentinel
	k.wg.Go(func() { k.watchBus(ctx, sentinel, gen, guid) })
	var held []*conn
	for _, c := range k.conns {
		c.mu.Lock()
		if c.state == stHeld {
			// It is connected to this bus instance, whenever it came.
			c.state, c.gen = stConnecting, gen
			held = append(held, c)
		}
		c.mu.Unlock()
	}
	k.mu.Unlock()
	if old != nil {
		old.close()
	}
	for _, c := range held {
		k.connectFirst(ctx, c)
	}
	k.changed()
	return nil
}

// dialSentinel connects the keeper's own connection to the bus, for
// watchBus. It says Hello: a connection that does not is dropped by
// dbus-daemon after auth_timeout, as one that never finished connecting.
func (k *Keeper) dialSentinel() (*sock, error) {
	s, _, err := k.dialUp(false, smallRead)
	if err != nil {
		return nil, err
	}
	rc := &replayConn{up: s, serial: ownSerialBase, replies: map[uint32]*ownReply{}}
	hello := rc.call("Hello", "", nil)
	if err := rc.wait(); err != nil {
		s.close()
		return nil, fmt.Errorf("keep: sentinel: %w", err)
	}
	if rc.replies[hello].str() == "" {
		s.close()
		return nil, fmt.Errorf("keep: sentinel: Hello failed: %s", rc.replies[hello].errName)
	}
	return s, nil
}

// watchBus reads the keeper's own connection to the bus instance gen
// until it ends, and then has the bus marked down, unless the same bus
// still answers (it dropped this connection alone: another is made).
// Every kept connection notices the end of its bus too, but while no app
// is connected only this one does: without it the keeper would report
// the bus up (or down) long after it went (or came back). It ends with
// ctx, or when markDown or a later reconnect closes s.
func (k *Keeper) watchBus(ctx context.Context, s *sock, gen uint64, guid string) {
	for {
		err := readAll(ctx, s)
		k.mu.Lock()
		mine := k.sentinel == s && k.gen == gen && !k.closing
		if mine {
			k.sentinel = nil
		}
		k.mu.Unlock()
		if !mine || ctx.Err() != nil {
			return
		}
		if g, perr := k.probeGUID(); perr != nil || g != guid {
			k.log.Debug("keep: the bus went away (the keeper's own connection ended)", "err", err)
			k.markDown(gen)
			return
		}
		k.log.Info("keep: the bus closed the keeper's own connection; making another", "err", err)
		t := time.NewTimer(backoffMax) // a bus that keeps doing so is not asked at once
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if s, err = k.dialSentinel(); err != nil {
			// Not there any more: the bus went after all.
			k.markDown(gen)
			return
		}
		k.mu.Lock()
		mine = k.gen == gen && !k.closing && k.sentinel == nil
		if mine {
			k.sentinel = s
		}
		k.mu.Unlock()
		if !mine {
			s.close()
			return
		}
	}
}

// readAll reads s until it fails (the end of the stream, or s closed) or
// ctx ends, dropping what it reads, and closes s. Nothing the bus sends
// the keeper's own connection matters (its NameAcquired); it is read so
// that it does not pile up.
func readAll(ctx context.Context, s *sock) error {
	stop := context.AfterFunc(ctx, s.shut)
	defer stop()
	var err error
	for err == nil {
		if err = s.fill(true); err == nil {
			s.start = s.end
		}
	}
	s.close()
	return err
}

// replay replays the connections down onto the bus with guid, in two
// phases so that kept peers see each other: first every connection says
// Hello and asks again for its matches and names, then each is told what
// changed and goes live.
func (k *Keeper) replay(ctx context.Context, gen uint64, guid string, began time.Time, down []*conn) (_ []control.Replay, err error) {
	rcs := make([]*replayConn, 0, len(down))
	defer func() {
		if err == nil {
			return
		}
		for _, rc := range rcs {
			// A connection that went live before the failure keeps its
			// upstream: closed here, it would stay live on a dead socket
			// that the poller no longer watches, its messages dropped
			// until the next restart. Left open, its end is seen as any
			// upstream's is (upstreamLost).
			if rc.up != nil && !rc.c.liveOn(rc.up) {
				rc.up.close()
			}
			closeFDs(rc.heldFDs)
		}
		for _, c := range down {
			c.mu.Lock()
			var replies *batch
			if c.state == stReplay {
				replies = c.toDown()
			}
			c.mu.Unlock()
			if replies != nil {
				c.tell(replies)
			}
		}
	}()
	for _, c := range down {
		rcs = append(rcs, snapshot(c))
	}
	ups := &upstreams{}
	stop := context.AfterFunc(ctx, ups.closeAll)
	defer stop()
	highest, err := k.burnNames(ctx, ups, rcs)
	if err != nil {
		return nil, err
	}

	// Phase 1a: a connection and a new unique name for each.
	for _, rc := range rcs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		up, upGUID, err := k.dialUp(rc.c.unixFD, readSize)
		if err != nil {
			return nil, err // the bus is not there (any more)
		}
		if !ups.add(up) {
			return nil, ctx.Err()
		}
		rc.up, rc.guid = up, upGUID
		hello := rc.call("Hello", "", nil)
		if rc.err = rc.wait(); rc.err == nil {
			if rc.current = rc.replies[hello].str(); rc.current == "" {
				rc.err = fmt.Errorf("keep: replay: Hello failed: %s", rc.replies[hello].errName)
			}
		}
	}
	kept := map[string]bool{}
	for _, rc := range rcs {
		if rc.err == nil {
			kept[rc.current] = true
		}
	}
	for _, rc := range rcs {
		rc.kept = kept
		rc.c.mu.Lock()
		if rc.err == nil {
			rc.c.current = rc.current
		}
		rc.c.mu.Unlock()
	}
	if err := k.aliasNewcomers(rcs, kept, highest); err != nil {
		return nil, err
	}
	k.rebuildNames()
	nm := k.names.Load()
	toCurrent := func(name string) string {
		if nm != nil {
			return nm.toCurrent[name]
		}
		return ""
	}

	// Phase 1b: matches, names, monitor; the bus's id once.
	busID := ""
	for _, rc := range rcs {
		if rc.err != nil {
			continue
		}
		for name := range rc.watched {
			if !strings.HasPrefix(name, ":") {
				rc.dropNOC[name] = true
			}
		}
		getID, monitor := uint32(0), uint32(0)
		if busID == "" {
			getID = rc.call("GetId", "", nil)
		}
		if rc.monitor {
			// A monitor has no matches or names of its own: the bus
			// dropped them when it became one.
			w := writer{}
			rules := make([]string, len(rc.monitorRules))
			for i, r := range rc.monitorRules {
				rules[i] = mapMatch(r, toCurrent)
			}
			w.strArray(rules)
			w.u32(rc.monitorFlags)
			monitor = rc.call("BecomeMonitor", "asu", w.b)
			rc.res.Monitor = true
		} else {
			for _, rule := range slices.Sorted(maps.Keys(rc.rules)) {
				mapped := mapMatch(rule, toCurrent)
				for range rc.rules[rule] {
					rc.call("AddMatch", "s", oneStr(mapped))
					rc.res.Matches++
				}
			}
		}
		names := map[uint32]string{}
		if !rc.monitor {
			for _, name := range slices.Sorted(maps.Keys(rc.requested)) {
				w := writer{}
				w.str(name)
				w.u32(rc.requested[name])
				serial := rc.call("RequestName", "su", w.b)
				names[serial] = name
				rc.requests[name] = serial
			}
		}
		if rc.err = rc.wait(); rc.err != nil {
			continue
		}
		if getID != 0 {
			busID = rc.replies[getID].str()
		}
		if r := rc.replies[monitor]; monitor != 0 && !r.ok {
			rc.err = fmt.Errorf("keep: replay: BecomeMonitor failed: %s", r.errName)
			continue
		}
		for serial, name := range names {
			switch v := rc.replies[serial].u32(); {
			case v == 1 || v == 4:
				rc.res.Names = append(rc.res.Names, name)
			case rc.owned[name]:
				rc.res.Lost = append(rc.res.Lost, name)
				if v == 2 {
					// Replaced, as by a RequestName with
					// REPLACE_EXISTING: the bus keeps it
					// in the queue, and so does the keeper.
					rc.queued[name] = true
				}
			case v == 2:
			default:
				// A name it waited in the queue for and may no longer.
			}
		}
		slices.Sort(rc.res.Names)
		slices.Sort(rc.res.Lost)
	}

	// Phase 2: tell each app what changed, then go live.
	for _, rc := range rcs {
		if rc.err == nil {
			rc.err = k.tell(rc, gen, nm)
			if rc.err == nil && k.wentLive != nil {
				k.wentLive()
			}
		}
		rc.res.BusID = busID
		rc.res.Time = began
		rc.res.Took = time.Since(began)
		rc.res.Connections = 1
		if rc.err != nil {
			if g, err := k.probeGUID(); k.currentGen() != gen || err != nil || g != guid {
				// Not this connection's failure: all start again.
				return nil, errors.New("keep: the bus went away during the replay")
			}
			k.replayFailed(rc)
		}
	}
	return k.summarize(rcs, busID, began), nil
}

// snapshot copies what c had asked of the bus, for its replay.
func snapshot(c *conn) *replayConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	dropped := c.dropped
	c.dropped = 0
	return &replayConn{
		dropped:      dropped,
		c:            c,
		serial:       ownSerialBase,
		replies:      map[uint32]*ownReply{},
		dropNOC:      map[string]bool{},
		requests:     map[string]uint32{},
		queued:       map[string]bool{},
		stable:       c.stable,
		rules:        maps.Clone(c.rules),
		requested:    maps.Clone(c.requested),
		owned:        maps.Clone(c.owned),
		monitor:      c.monitor,
		monitorRules: slices.Clone(c.monitorRules),
		monitorFlags: c.monitorFlags,
		watched:      maps.Clone(c.watched),
		lastOwner:    maps.Clone(c.lastOwner),
		talked:       maps.Clone(c.talked),
		res:          control.Replay{PID: c.pid, Command: c.command},
	}
}

// tell asks the bus who owns the names the app watched, builds the signals
// that bring the app up to date (NameLost for what it lost; for each
// watched name the vanish of its old owner before the new owner; the
// vanish of the connections it talked to that did not come back) and hands
// the connection over to forwarding.
func (k *Keeper) tell(rc *replayConn, gen uint64, nm *nameMap) error {
	toStable := func(name string) string {
		if nm != nil {
			if s, ok := nm.toStable[name]; ok {
				return s
			}
		}
		return name
	}
	toCurrent := func(name string) string {
		if nm != nil {
			if s, ok := nm.toCurrent[name]; ok {
				return s
			}
		}
		return name
	}
	isKept := func(stable string) bool { return rc.kept[toCurrent(stable)] }
	var wellKnown, vanished []string
	for name := range rc.watched {
		if strings.HasPrefix(name, ":") {
			if !isKept(name) {
				vanished = append(vanished, name)
			}
		} else {
			wellKnown = append(wellKnown, name)
		}
	}
	for name := range rc.talked {
		if !isKept(name) && !rc.watched[name] {
			vanished = append(vanished, name)
		}
	}
	slices.Sort(wellKnown)
	slices.Sort(vanished)
	owners := map[string]uint32{}
	if !rc.monitor && len(wellKnown) > 0 {
		for _, name := range wellKnown {
			owners[name] = rc.call("GetNameOwner", "s", oneStr(name))
		}
		if err := rc.wait(); err != nil {
			return err
		}
	}

	c := rc.c
	c.mu.Lock()
	var sig []byte
	emit := func(member, dest string, args ...string) {
		s := signal{sender: busName, iface: busName, member: member, path: "/org/freedesktop/DBus", dest: dest, args: args}
		if dest == "" && !slices.ContainsFunc(slices.Collect(maps.Keys(c.rules)), func(r string) bool { return matches(r, &s) }) {
			return
		}
		w := writer{}
		for _, a := range args {
			w.str(a)
		}
		c.serial++
		sig = appendMessage(sig, typeSignal, flagNoReplyExpected, c.serial, &fields{
			path: s.path, iface: busName, member: member, dest: dest, sender: busName,
			sig: strings.Repeat("s", len(args)),
		}, w.b)
	}
	if !rc.monitor {
		for _, name := range rc.res.Lost {
			emit("NameLost", c.stable, name)
			delete(c.owned, name)
			if !rc.queued[name] {
				delete(c.requested, name)
			}
			k.log.Warn("keep: an app lost a name in the bus restart: someone else owns it now",
				"pid", c.pid, "command", c.command, "name", name, "queued", rc.queued[name])
		}
		for _, name := range wellKnown {
			old := rc.lastOwner[name]
			nw := toStable(rc.replies[owners[name]].str())
			if old == nw {
				continue
			}
			if old != "" {
				emit("NameOwnerChanged", "", name, old, "")
			}
			if nw != "" {
				emit("NameOwnerChanged", "", name, "", nw)
			}
			c.lastOwner[name] = nw
		}
		for _, name := range vanished {
			emit("NameOwnerChanged", "", name, name, "")
			delete(c.talked, name)
			delete(c.watched, name)
			delete(c.lastOwner, name)
		}
	}
	c.replayFails = 0
	// A restart is counted once per bus instance: a replay that fails
	// late (goLive) and is tried again on the same bus is the same
	// restart.
	if rc.guid != c.busGUID {
		c.restarts++
		c.busGUID = rc.guid
	}
	c.mu.Unlock()
	// goLive owns the held fds from here, whatever it returns: the
	// clean-up of a failed replay must not close their numbers again.
	heldFDs := rc.heldFDs
	rc.heldFDs = nil
	return k.goLive(c, rc.up, gen, sig, rc.held, heldFDs)
}

// replayFailed puts a connection whose replay failed back down, to be
// tried again, or after maxReplayFails gives up on it and disconnects the
// app, as the bus would have.
func (k *Keeper) replayFailed(rc *replayConn) {
	if rc.up != nil {
		rc.up.close()
	}
	closeFDs(rc.heldFDs)
	rc.heldFDs = nil
	c := rc.c
	c.mu.Lock()
	var replies *batch
	if c.state == stReplay {
		replies = c.toDown()
	}
	c.replayFails++
	giveUp := c.replayFails >= maxReplayFails
	c.mu.Unlock()
	if replies != nil {
		c.tell(replies)
	}
	rc.res.Error = rc.err.Error()
	if giveUp {
		k.log.Warn("keep: replay failed; disconnecting the app", "pid", c.pid, "command", c.command, "err", rc.err)
		c.disconnect()
		return
	}
	k.log.Warn("keep: replay failed; trying again", "pid", c.pid, "command", c.command, "err", rc.err)
	k.wakeUp()
}

// summarize turns the replays of connections into one Replay per app,
// records it as each connection's last and logs it.
func (k *Keeper) summarize(rcs []*replayConn, busID string, began time.Time) []control.Replay {
	var out []control.Replay
	byPID := map[int]int{}
	for _, rc := range rcs {
		i, ok := byPID[rc.c.pid]
		if !ok {
			i = len(out)
			byPID[rc.c.pid] = i
			out = append(out, control.Replay{
				PID: rc.c.pid, Command: rc.c.command, Bus: k.cfg.Bus, BusID: busID, Time: began,
			})
		}
		r := &out[i]
		r.Took = max(r.Took, rc.res.Took)
		r.Connections++
		r.Matches += rc.res.Matches
		r.Names = append(r.Names, rc.res.Names...)
		r.Lost = append(r.Lost, rc.res.Lost...)
		r.Monitor = r.Monitor || rc.res.Monitor
		if r.Error == "" {
			r.Error = rc.res.Error
		}
	}
	for i := range out {
		slices.Sort(out[i].Names)
		slices.Sort(out[i].Lost)
	}
	for _, rc := range rcs {
		r := out[byPID[rc.c.pid]]
		rc.c.mu.Lock()
		rc.c.lastReplay = &r
		rc.c.mu.Unlock()
	}
	lost, dropped := 0, 0
	for _, r := range out {
		lost += len(r.Lost)
	}
	for _, rc := range rcs {
		dropped += rc.dropped
		rc.c.log().Debug("keep: replayed", "matches", rc.res.Matches, "names", rc.res.Names,
			"lost", rc.res.Lost, "dropped", rc.dropped, "err", rc.res.Error)
	}
	k.log.Info("keep: replayed the kept apps onto the bus", "apps", len(out), "connections", len(rcs),
		"lost", lost, "dropped", dropped, "bus_id", busID, "took", time.Since(began))
	return out
}

// burnNames makes the bus hand out unique names past every one the kept
// apps may know (their own, their peers'), by connecting and leaving
// until it does. A new bus numbers from :1.0 again; without this, a name
// an app knows from before could be a different connection now, or the
// same name could stand for two kept connections. A few connections at
// a time: a bus that lived long has handed out thousands of names.
func (k *Keeper) burnNames(ctx context.Context, ups *upstreams, rcs []*replayConn) (int, error) {
	highest := -1
	note := func(name string) {
		if n, ok := uniqueNumber(name); ok {
			highest = max(highest, n)
		}
	}
	for _, rc := range rcs {
		note(rc.stable)
		for n := range rc.talked {
			note(n)
		}
		for n := range rc.watched {
			note(n)
		}
		for _, n := range rc.lastOwner {
			note(n)
		}
	}
	k.mu.Lock()
	for _, c := range k.conns {
		c.mu.Lock()
		if c.state != stReplay {
			note(c.stable)
		}
		c.mu.Unlock()
	}
	k.mu.Unlock()
	if highest < 0 {
		return highest, nil
	}
	const workers = 8
	var (
		done     atomic.Bool
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for !done.Load() {
				n, err := k.burnOne(ctx, ups)
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					done.Store(true)
					return
				}
				if n > highest {
					done.Store(true)
				}
			}
		})
	}
	wg.Wait()
	return highest, firstErr
}

// aliasNewcomers finds the connections that came to the new bus before
// the keeper burnt the names the kept apps know, and so may have one of
// them, and gives them names of the keeper's own toward the kept apps
// (":busmedic.N", a form no bus hands out). A name a kept app knows from
// the old bus and that is not a kept connection's then reaches no one,
// as on the old bus, instead of the newcomer.
func (k *Keeper) aliasNewcomers(rcs []*replayConn, kept map[string]bool, highest int) error {
	var rc *replayConn
	for _, r := range rcs {
		if r.err == nil {
			rc = r
			break
		}
	}
	if rc == nil || highest < 0 {
		return nil
	}
	list := rc.call("ListNames", "", nil)
	if err := rc.wait(); err != nil {
		return err
	}
	r := rc.replies[list]
	if r == nil || !r.ok {
		return nil
	}
	rd := reader{b: r.body, big: r.big}
	names := rd.strArray()
	stable := map[string]bool{}
	k.mu.Lock()
	for _, c := range k.conns {
		c.mu.Lock()
		stable[c.stable] = true
		c.mu.Unlock()
	}
	k.mu.Unlock()
	var m *nameMap
	for _, name := range names {
		n, ok := uniqueNumber(name)
		if !ok || n > highest || kept[name] {
			continue
		}
		if m == nil {
			m = &nameMap{toStable: map[string]string{}, toCurrent: map[string]string{}}
		}
		alias := ":busmedic." + strconv.Itoa(n)
		m.toStable[name] = alias
		m.toCurrent[alias] = name
		if !stable[name] {
			m.toCurrent[name] = ":busmedic.gone"
		}
		k.log.Debug("keep: a newcomer has a name the kept apps may know; they see it under another",
			"unique_name", name, "alias", alias)
	}
	k.mu.Lock()
	k.aliases = m
	k.mu.Unlock()
	return nil
}

// burnOne connects, says Hello and leaves, returning N of the name got.
func (k *Keeper) burnOne(ctx context.Context, ups *upstreams) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	up, _, err := k.dialUp(false, smallRead)
	if err != nil {
		return 0, err
	}
	if !ups.add(up) {
		return 0, ctx.Err()
	}
	defer ups.remove(up)
	rc := &replayConn{up: up, serial: ownSerialBase, replies: map[uint32]*ownReply{}}
	hello := rc.call("Hello", "", nil)
	if err := rc.wait(); err != nil {
		return 0, err
	}
	n, ok := uniqueNumber(rc.replies[hello].str())
	if !ok {
		// Not a name of the form ":1.N": nothing to burn past.
		return math.MaxInt, nil
	}
	return n, nil
}

// upstreams are the connections a replay opens, closed if its context
// ends mid-way so that Serve does not wait for the replay's timeouts.
type upstreams struct {
	mu    sync.Mutex
	done  bool
	socks []*sock
}

// add keeps s, or closes it and returns false if the context ended.
func (u *upstreams) add(s *sock) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.done {
		s.close()
		return false
	}
	u.socks = append(u.socks, s)
	return true
}

// remove closes s and forgets it.
func (u *upstreams) remove(s *sock) {
	u.mu.Lock()
	defer u.mu.Unlock()
	s.close()
	if i := slices.Index(u.socks, s); i >= 0 {
		u.socks = slices.Delete(u.socks, i, i+1)
	}
}

func (u *upstreams) closeAll() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.done = true
	for _, s := range u.socks {
		s.shut()
	}
}

// uniqueNumber returns N of a unique name ":1.N", as dbus-daemon and
// dbus-broker hand them out.
func uniqueNumber(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, ":1.")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil
}
