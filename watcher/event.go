package watcher

import (
	"fmt"
	"strings"
	"time"
)

// Kind says what happened to a bus.
type Kind int

// The kinds of Event, in the order a bus restart produces them: Down, then
// Up and Restarted when the bus is back with a new instance id.
const (
	// Up: connected to the bus; ID is its instance id.
	Up Kind = iota + 1
	// Down: the bus went away, or was not reachable at start. Reason says
	// why; Peers lists who was connected just before.
	Down
	// Restarted follows the Up that ends a Down when the bus instance id
	// changed: OldID and ID, Downtime, and Peers as in the Down.
	Restarted
	// NameOwnerChanged: a well-known name changed owner (unique names are
	// reported as PeerJoined and PeerLeft instead).
	NameOwnerChanged
	// PeerJoined: a connection appeared, or was found when connecting.
	PeerJoined
	// PeerLeft: a connection closed. A daemon that shuts down in order
	// closes its other connections before ours: their PeerLeft comes just
	// before the Down, whose Peers still lists them.
	PeerLeft
	// Outdated: the bus daemon runs code that was replaced on disk after
	// it started, as after a security update of dbus; restarting the bus
	// finishes the update. Reason says what was replaced, Files lists the
	// replaced files when a file watch saw them go, and Peer is the bus
	// daemon. It comes after the Up of a daemon that is outdated already,
	// and while the bus is up when one of its files is replaced; at most
	// once per distinct Reason per bus instance.
	Outdated
)

var kindNames = [...]string{
	Up:               "up",
	Down:             "down",
	Restarted:        "restarted",
	NameOwnerChanged: "name-owner-changed",
	PeerJoined:       "peer-joined",
	PeerLeft:         "peer-left",
	Outdated:         "outdated",
}

// String returns the kind's stable name, as used in JSON: "up", "down", ….
func (k Kind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// MarshalText encodes the kind as its String.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText decodes a kind from its String.
func (k *Kind) UnmarshalText(b []byte) error {
	for i, n := range kindNames {
		if n != "" && n == string(b) {
			*k = Kind(i)
			return nil
		}
	}
	return fmt.Errorf("unknown event kind %q", b)
}

// Event is one thing that happened on one bus. Events of one bus are
// delivered in the order they happened.
type Event struct {
	Time time.Time `json:"time"`
	// Bus is the Target's name: "session", "system" or an address.
	Bus  string `json:"bus"`
	Kind Kind   `json:"event"`
	// ID is the bus instance id (org.freedesktop.DBus.GetId): of the bus
	// now up, or of the bus that went down; "" if it was never reached.
	ID      string `json:"id"`
	Address string `json:"address,omitempty"`

	// Reason says why a bus is down, or for Outdated what was replaced,
	// in words for people.
	Reason string `json:"reason,omitempty"`
	// Files is, for Outdated, the daemon's files seen replaced on disk.
	Files []string `json:"files,omitempty"`
	// Peers is, for Down and Restarted, who was on the bus just before it
	// went down, sorted by unique name. It includes the peers a daemon that
	// shut down in order disconnected before us: their PeerLeft came first.
	Peers []Peer `json:"peers,omitempty"`
	// Activatable is, for Up, the names the bus can start on demand
	// (ListActivatableNames), sorted; nil with UpDownOnly.
	Activatable []string `json:"activatable,omitempty"`

	// OldID and Downtime are set for Restarted.
	OldID    string        `json:"old_id,omitempty"`
	Downtime time.Duration `json:"downtime_ns,omitempty"`

	// Name, OldOwner and NewOwner are set for NameOwnerChanged; an empty
	// owner means none.
	Name     string `json:"name,omitempty"`
	OldOwner string `json:"old_owner,omitempty"`
	NewOwner string `json:"new_owner,omitempty"`

	// Peer is set for PeerJoined and PeerLeft; for NameOwnerChanged with
	// the peer that gained or lost the name, as it is after the change; and
	// for Up and Outdated with the bus daemon's own process, when the bus
	// tells it.
	Peer *Peer `json:"peer,omitempty"`
}

// String renders the event as one line for people.
func (e Event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", e.Time.Format("15:04:05.000"), e.Bus, e.Kind)
	switch e.Kind {
	case Up:
		fmt.Fprintf(&b, " id=%s", e.ID)
	case Down:
		fmt.Fprintf(&b, ": %s", e.Reason)
		if len(e.Peers) > 0 {
			if len(e.Peers) == 1 {
				b.WriteString("; 1 peer was connected:")
			} else {
				fmt.Fprintf(&b, "; %d peers were connected:", len(e.Peers))
			}
			for i, p := range e.Peers {
				if i > 0 {
					b.WriteByte(',')
				}
				b.WriteString(" " + p.String())
			}
		}
	case Restarted:
		fmt.Fprintf(&b, " id %s -> %s after %s", e.OldID, e.ID, e.Downtime.Round(time.Millisecond))
	case NameOwnerChanged:
		fmt.Fprintf(&b, " %s: %q -> %q", e.Name, e.OldOwner, e.NewOwner)
	case PeerJoined, PeerLeft:
		if e.Peer != nil {
			b.WriteString(" " + e.Peer.String())
		}
	case Outdated:
		if e.Peer != nil {
			fmt.Fprintf(&b, " %s", e.Peer)
		}
		fmt.Fprintf(&b, ": %s; restart the bus to finish the update", e.Reason)
	}
	return b.String()
}
