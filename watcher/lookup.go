package watcher

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/godbus/dbus/v5"
)

// ProcessPeers asks the bus t, on a connection of its own that it closes
// before it returns, which connections the process pid has on it, and
// returns them with the well-known names each owns and what /proc tells of
// the process; none when the process is not on the bus. An error means the
// bus could not be asked: it is down, or refused us.
func ProcessPeers(ctx context.Context, t Target, pid int) ([]Peer, error) {
	eps, err := parseAddress(t.Address)
	if err != nil {
		return nil, err
	}
	conn, err := dialAny(ctx, eps)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	bus := conn.BusObject()
	var names []string
	if err := bus.CallWithContext(ctx, busName+".ListNames", 0).Store(&names); err != nil {
		return nil, fmt.Errorf("ListNames: %w", err)
	}
	// One round trip for all the questions: the bus answers in order.
	ask := func(method string, names []string) []*dbus.Call {
		calls := make([]*dbus.Call, len(names))
		for i, n := range names {
			calls[i] = bus.GoWithContext(ctx, busName+"."+method, 0, make(chan *dbus.Call, 1), n)
		}
		return calls
	}
	var uniques, known []string
	for _, n := range names {
		switch {
		case strings.HasPrefix(n, ":"):
			if n != conn.Names()[0] {
				uniques = append(uniques, n)
			}
		case n != busName:
			known = append(known, n)
		}
	}
	found := map[string]*Peer{}
	for i, c := range ask("GetConnectionUnixProcessID", uniques) {
		var got uint32
		if (<-c.Done).Store(&got) == nil && int(got) == pid {
			p, err := ProcessInfo(pid)
			if err != nil {
				return nil, err // it exited meanwhile
			}
			p.UniqueName = uniques[i]
			found[uniques[i]] = &p
		}
	}
	if len(found) == 0 {
		return nil, nil
	}
	for i, c := range ask("GetNameOwner", known) {
		var owner string
		if (<-c.Done).Store(&owner) == nil && found[owner] != nil {
			found[owner].addName(known[i])
		}
	}
	out := make([]Peer, 0, len(found))
	for _, p := range found {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(a.UniqueName, b.UniqueName) })
	return out, nil
}
