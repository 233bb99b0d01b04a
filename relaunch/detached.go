package relaunch

import (
	"bytes"
	"os"
	"strconv"
	"strings"

	"busmedic/appdb"
	"busmedic/watcher"
)

// A connection can leave the bus's name table while its process stays a
// client: dbus-monitor calls BecomeMonitor right after Hello, and from then
// on it owns no name, not even its unique one, so the watcher reports it as
// PeerLeft (often before it could even ask for its pid). Such a process
// still dies with the bus. So when a peer leaves, the engine looks in /proc
// for processes of this user that match a rule, have this bus's address in
// their environment and are not among the peers, and keeps them as
// "detached" members of the bus until it goes down.

// scanDetached finds such processes for bus. It only looks when some rule
// can match a process without names (exe, argv0 or cmdline).
func (e *Engine) scanDetached(bus string) {
	set := e.cfg.Rules()
	if set == nil || !hasNamelessMatcher(set) {
		return
	}
	addr := watcher.WithoutGUID(e.address(bus))
	if addr == "" {
		return
	}
	envKey := []byte("DBUS_SESSION_BUS_ADDRESS=")
	if bus == string(appdb.BusSystem) {
		envKey = []byte("DBUS_SYSTEM_BUS_ADDRESS=")
	}
	e.mu.Lock()
	b := e.bus(bus)
	known := map[int]bool{}
	for _, p := range b.peers {
		known[p.PID] = true
	}
	for pid := range b.detached {
		known[pid] = true
	}
	e.mu.Unlock()

	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	uid := currentUID()
	self := os.Getpid()
	var found []watcher.Peer
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil || known[pid] || pid == self {
			continue
		}
		info, err := watcher.ProcessInfo(pid)
		if err != nil || info.UID != uid || info.StartTime == 0 {
			continue
		}
		if _, ok := set.MatchBus(appdb.Bus(bus), info); !ok {
			continue
		}
		env, err := os.ReadFile("/proc/" + ent.Name() + "/environ")
		if err != nil {
			continue
		}
		for kv := range bytes.SplitSeq(env, []byte{0}) {
			if v, ok := bytes.CutPrefix(kv, envKey); ok && watcher.WithoutGUID(string(v)) == addr {
				found = append(found, info)
				break
			}
		}
	}
	if len(found) == 0 {
		return
	}
	e.mu.Lock()
	for _, p := range found {
		if b.up {
			b.detached[p.PID] = p
		}
	}
	e.mu.Unlock()
	e.notifyChanged() // the app shows as running
	e.log.Debug("processes off the name table but on the bus", "bus", bus, "count", len(found))
}

func hasNamelessMatcher(set *appdb.Set) bool {
	for _, r := range set.Rules() {
		if r.Enabled && (r.Exe != "" || r.Argv0 != "" || strings.TrimSpace(r.Cmdline) != "") {
			return true
		}
	}
	return false
}
