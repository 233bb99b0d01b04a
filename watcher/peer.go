package watcher

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// Peer is one connection on a bus, with what the bus and /proc tell about the
// process behind it. Fields that cannot be read (the process belongs to
// another user, or has already exited) are left empty: a peer is still worth
// reporting when only its names are known.
type Peer struct {
	// UniqueName is the connection's bus-assigned name, such as ":1.42".
	UniqueName string `json:"unique_name"`
	// Names are the well-known names the connection owns, sorted.
	Names []string `json:"names,omitempty"`
	// PID is the process id the bus reports, or 0 if unknown (a TCP peer).
	PID int `json:"pid,omitempty"`
	// UID is the user id the bus reports, or -1 if unknown.
	UID int `json:"uid"`
	// Exe is the resolved path of the process's executable.
	Exe string `json:"exe,omitempty"`
	// Argv is the process's command line.
	Argv []string `json:"argv,omitempty"`
	// Cwd is the process's working directory.
	Cwd string `json:"cwd,omitempty"`
	// PPID is the parent's process id when the peer was seen: it tells
	// the helpers an app started (a panel's plugins) from other programs.
	PPID int `json:"ppid,omitempty"`
	// MayHaveLeft is set in a Down snapshot for a peer that the bus said
	// goodbye for in its last moments, so it counts as connected, but
	// whose process had already exited when the goodbye came: it may have
	// left by itself, as a command-line client that finished does.
	MayHaveLeft bool `json:"may_have_left,omitempty"`
	// StartTime is the process start time in clock ticks since boot, as in
	// field 22 of /proc/PID/stat. With PID it identifies the process across
	// pid reuse; 0 if unknown.
	StartTime uint64 `json:"start_time,omitempty"`
	// Unit is the systemd service of the process's own user manager that
	// the process ran in when it was seen, such as
	// "app-dunst@autostart.service": that manager can start it again. ""
	// for a process in a scope (a login session, an app a desktop
	// launched), in a system unit, or without systemd.
	Unit string `json:"unit,omitempty"`
}

// Owns reports whether the peer owns the well-known name.
func (p Peer) Owns(name string) bool {
	_, found := slices.BinarySearch(p.Names, name)
	return found
}

// String returns a short human description such as "dunst[1234] org.freedesktop.Notifications".
func (p Peer) String() string {
	s := p.UniqueName
	if p.PID > 0 {
		prog := "pid"
		switch {
		case len(p.Argv) > 0 && p.Argv[0] != "":
			prog = baseName(p.Argv[0])
		case p.Exe != "":
			prog = baseName(p.Exe)
		}
		s = fmt.Sprintf("%s[%d]", prog, p.PID)
	}
	for _, n := range p.Names {
		s += " " + n
	}
	return s
}

func (p Peer) clone() Peer {
	p.Names = slices.Clone(p.Names)
	p.Argv = slices.Clone(p.Argv)
	return p
}

func (p *Peer) addName(name string) {
	if i, found := slices.BinarySearch(p.Names, name); !found {
		p.Names = slices.Insert(p.Names, i, name)
	}
}

func (p *Peer) removeName(name string) {
	if i, found := slices.BinarySearch(p.Names, name); found {
		p.Names = slices.Delete(p.Names, i, i+1)
	}
}

func baseName(path string) string {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '/' {
			return path[i+1:]
		}
	}
	return path
}

// ProcessInfo fills the process fields of a Peer (PID, PPID, UID, Exe, Argv,
// Cwd, StartTime, Unit) from /proc. It returns an error only when the
// process does not exist; fields that are not readable (another user's
// process) stay empty.
func ProcessInfo(pid int) (Peer, error) {
	p := Peer{PID: pid, UID: -1}
	if pid <= 0 {
		return p, fmt.Errorf("process info: invalid pid %d", pid)
	}
	proc, err := procfs.NewProc(pid)
	if err != nil {
		return p, fmt.Errorf("process info for pid %d: %w", pid, err)
	}
	stat, err := proc.Stat()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return p, fmt.Errorf("process info for pid %d: %w", pid, err)
		}
	} else {
		p.StartTime, p.PPID = stat.Starttime, stat.PPID
	}
	if st, err := proc.NewStatus(); err == nil {
		p.UID = int(st.UIDs[0])
	}
	// Each of these fails with EACCES for another user's process; that is
	// expected and leaves the field empty.
	p.Exe, _ = proc.Executable()
	p.Argv, _ = proc.CmdLine()
	p.Cwd, _ = proc.Cwd()
	if cg, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup"); err == nil {
		// Only a unit of the process's own user's manager: the one
		// busmedic, running as that user, can reach.
		if unit, manager := cgroupUnit(string(cg)); manager >= 0 && manager == p.UID {
			p.Unit = unit
		}
	}
	return p, nil
}

// pinnedProcessInfo is ProcessInfo for a process the bus named by pid and,
// where it can, by a pidfd (-1 if none). With a pidfd the pid is the pidfd's
// own, and what /proc says counts only if the process is still alive after
// it was read: then the pid cannot have been reused in between, and the
// start time identifies the very process the bus meant. Of a process that
// exited meanwhile only the pid is kept, so that nothing is matched or
// signalled on its account.
func pinnedProcessInfo(pid, pidfd int) (Peer, error) {
	if pidfd < 0 {
		return ProcessInfo(pid)
	}
	fdPID, err := pidfdPID(pidfd)
	if err != nil {
		// Reaped already: whatever runs under its pid now is another.
		return Peer{PID: pid, UID: -1}, nil
	}
	p, err := ProcessInfo(fdPID)
	if err != nil {
		return p, err
	}
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	if n, err := unix.Poll(fds, 0); err != nil || n > 0 {
		// Exited (or cannot tell): what /proc said may be of another
		// process by now; keep only the pid.
		return Peer{PID: fdPID, UID: -1}, nil
	}
	return p, nil
}

// pidfdPID reads the pid a pidfd refers to from /proc/self/fdinfo; it is
// -1 there once the process has been reaped.
func pidfdPID(pidfd int) (int, error) {
	data, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(pidfd))
	if err != nil {
		return 0, fmt.Errorf("pidfd %d: %w", pidfd, err)
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "Pid:"); ok {
			pid, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || pid <= 0 {
				return 0, fmt.Errorf("pidfd %d: process gone (Pid: %s)", pidfd, strings.TrimSpace(v))
			}
			return pid, nil
		}
	}
	return 0, fmt.Errorf("pidfd %d: no Pid in fdinfo", pidfd)
}
