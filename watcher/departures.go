package watcher

import (
	"slices"
	"strings"

	"github.com/godbus/dbus/v5"
	"github.com/prometheus/procfs"
)

// departures tells the peers that left the bus by themselves from the ones
// the bus daemon disconnected while shutting down.
//
// A dbus-daemon stopped with SIGTERM (systemd, package scripts, logout)
// closes its other connections before ours and says goodbye for each:
// NameOwnerChanged for every name, then for the unique name. Taken at face
// value, the Down that follows would carry no peers and nothing would be
// recovered. So each loss (a name released, a peer gone) waits for the bus
// to answer a call sent after it: a daemon that answers was still serving
// after the loss, so the peer really went. A daemon that is shutting down
// has left its main loop and answers nothing; the losses it never confirmed
// are part of its shutdown, and the peers count as connected at the Down.
// One call is in flight at a time; it confirms every loss recorded before it
// was sent, so a burst of losses costs one round trip.
type departures struct {
	conn *dbus.Conn
	// sent holds the losses the call in flight confirms; later holds the
	// ones recorded since it was sent. Each maps a unique name to the peer
	// as it was before its first loss in that batch.
	sent, later map[string]Peer
	calls       chan *dbus.Call // nil while no call is in flight
}

// record notes a loss that e reports, if it is one.
func (d *departures) record(e Event) {
	if e.Peer == nil {
		return
	}
	var before Peer
	switch {
	case e.Kind == PeerLeft:
		before = e.Peer.clone()
		// A bus shutting down disconnects a client before the client
		// can exit; a client that exits by itself is gone before the
		// bus notices. So a process already gone at its goodbye is
		// probably one that finished on its own.
		before.MayHaveLeft = before.PID > 0 && !running(before.PID, before.StartTime)
	case e.Kind == NameOwnerChanged && e.NewOwner == "" && e.Peer.UniqueName == e.OldOwner:
		before = e.Peer.clone()
		before.addName(e.Name)
	default:
		return
	}
	if d.calls == nil {
		d.sent = addLoss(d.sent, before)
		d.ask()
		return
	}
	d.later = addLoss(d.later, before)
}

func addLoss(m map[string]Peer, p Peer) map[string]Peer {
	if m == nil {
		m = map[string]Peer{}
	}
	if q, ok := m[p.UniqueName]; ok {
		for _, n := range p.Names {
			q.addName(n)
		}
		q.MayHaveLeft = q.MayHaveLeft || p.MayHaveLeft
		p = q
	}
	m[p.UniqueName] = p
	return m
}

// ask sends the confirming call. GetId is cheap and served by every bus
// implementation.
func (d *departures) ask() {
	d.calls = make(chan *dbus.Call, 1)
	d.conn.BusObject().Go(busName+".GetId", 0, d.calls)
}

// takeAnswers confirms with an answer that has arrived but was not read:
// godbus delivers a reply before it closes the connection, and a select on
// both may see the close first. Called when the connection is gone.
func (d *departures) takeAnswers() {
	for d.calls != nil {
		select {
		case call := <-d.calls:
			d.confirm(call)
		default:
			return
		}
	}
}

// answered is the channel the call in flight answers on, or nil.
func (d *departures) answered() <-chan *dbus.Call { return d.calls }

// confirm takes the answer to the call in flight. An error leaves its
// losses unconfirmed: the connection is breaking, and they go into the Down.
func (d *departures) confirm(call *dbus.Call) {
	d.calls = nil
	if call.Err != nil {
		d.sent = addAll(d.sent, d.later)
		d.later = nil
		return
	}
	d.sent, d.later = d.later, nil
	if len(d.sent) > 0 {
		d.ask()
	}
}

func addAll(dst, src map[string]Peer) map[string]Peer {
	for _, p := range src {
		dst = addLoss(dst, p)
	}
	return dst
}

// count returns how many peers have unconfirmed losses.
func (d *departures) count() int32 { return int32(len(d.sent) + len(d.later)) }

// unconfirmed returns the peers, as they were before their losses, that the
// bus never confirmed gone.
func (d *departures) unconfirmed() []Peer {
	all := addAll(addAll(nil, d.sent), d.later)
	out := make([]Peer, 0, len(all))
	for _, p := range all {
		out = append(out, p)
	}
	return out
}

// mergePeers adds to snap (sorted by unique name) the peers of gone: a peer
// still in snap gets back the names it lost, one no longer there is added.
func mergePeers(snap, gone []Peer) []Peer {
	for _, g := range gone {
		i := slices.IndexFunc(snap, func(p Peer) bool { return p.UniqueName == g.UniqueName })
		if i < 0 {
			snap = append(snap, g)
			continue
		}
		for _, n := range g.Names {
			snap[i].addName(n)
		}
		snap[i].MayHaveLeft = snap[i].MayHaveLeft || g.MayHaveLeft
	}
	slices.SortFunc(snap, func(a, b Peer) int { return strings.Compare(a.UniqueName, b.UniqueName) })
	return snap
}

// running reports whether the process pid, started at start (0: any),
// still runs; a zombie has exited.
func running(pid int, start uint64) bool {
	proc, err := procfs.NewProc(pid)
	if err != nil {
		return false
	}
	st, err := proc.Stat()
	return err == nil && st.State != "Z" && (start == 0 || st.Starttime == start)
}
