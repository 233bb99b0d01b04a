package relaunch

import (
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/prometheus/procfs"

	"busmedic/relaunch/control"
	"busmedic/watcher"
)

// ancestry walks up the parents of the snapshot's processes, to tell which
// app started a helper process (a panel's plugin wrappers): the helper is
// the app's, not a casualty of its own.
type ancestry struct {
	ppid   map[int]int // from the snapshot: pid -> parent when seen
	parent func(pid int) int
}

// maxAncestry bounds the walk: process trees are shallow, and a loop in
// stale data must end.
const maxAncestry = 16

func newAncestry(snapshot []watcher.Peer, parent func(int) int) ancestry {
	a := ancestry{ppid: map[int]int{}, parent: parent}
	if a.parent == nil {
		a.parent = liveParent
	}
	for _, p := range snapshot {
		if p.PID > 0 && p.PPID > 0 {
			a.ppid[p.PID] = p.PPID
		}
	}
	return a
}

// owner returns the job of the nearest ancestor of p that byPID holds, or
// nil. Parents come from the snapshot first (the processes may have exited
// with their bus), then from /proc for the processes in between that were
// on no bus.
func (a ancestry) owner(p watcher.Peer, byPID map[int]*control.PlannedJob) *control.PlannedJob {
	if p.PID <= 0 || len(byPID) == 0 {
		return nil
	}
	pid := p.PPID
	if pid == 0 {
		pid = a.parent(p.PID)
	}
	for range maxAncestry {
		if pid <= 1 {
			return nil
		}
		if j := byPID[pid]; j != nil {
			return j
		}
		next, ok := a.ppid[pid]
		if !ok {
			next = a.parent(pid)
		}
		pid = next
	}
	return nil
}

// liveParent reads the parent of a running process, or 0.
func liveParent(pid int) int {
	proc, err := procfs.NewProc(pid)
	if err != nil {
		return 0
	}
	st, err := proc.Stat()
	if err != nil {
		return 0
	}
	return st.PPID
}

// self is busmedic's own program: the daemon, its tray child (the same
// executable) and the rules editor (busmedic-rules beside it). Their
// connections are never casualties or apps to recover: the daemon
// restarts the tray itself, and the others reconnect or are started anew.
var self = sync.OnceValues(func() (int, string) {
	exe, err := os.Executable()
	if err != nil {
		exe = ""
	}
	if r, err := filepath.EvalSymlinks(exe); err == nil {
		exe = r
	}
	return os.Getpid(), exe
})

// ours reports whether p is one of busmedic's own processes.
func ours(p watcher.Peer) bool {
	pid, exe := self()
	if p.PID > 0 && p.PID == pid {
		return true
	}
	pexe := strings.TrimSuffix(p.Exe, " (deleted)")
	if exe == "" || pexe == "" {
		return false
	}
	return pexe == exe || pexe == filepath.Join(filepath.Dir(exe), "busmedic-rules")
}
