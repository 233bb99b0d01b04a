package bustest

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Clients returns the pids of the running processes (no zombies) whose
// session bus, or the bus that started them, is this bus: a session's
// programs, whoever started them (the test, an app, the bus on demand),
// and the deaf copies its earlier daemons left behind.
func (b *Bus) Clients() []int {
	addr := b.Address()
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !onBus(env, addr) || zombie(pid) {
			continue
		}
		out = append(out, pid)
	}
	return out
}

// KillClients kills every process of Clients with SIGKILL and waits for
// each to exit. A test that lets the bus start services on demand (Stock)
// calls it before the bus's own cleanup: the services a deaf program
// stays alive with outlive every daemon.
func (b *Bus) KillClients() {
	for _, pid := range b.Clients() {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue // gone
		}
		if unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0) == nil {
			fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			for {
				n, err := unix.Poll(fds, int(waitLimit/time.Millisecond))
				if err == unix.EINTR {
					continue
				}
				if n == 0 {
					b.t.Errorf("bustest: pid %d still runs %s after SIGKILL", pid, waitLimit)
				}
				break
			}
		}
		unix.Close(fd)
	}
}

// onBus reports whether the environment block env names addr (possibly
// followed by more of the address, such as its guid) as the session bus
// or the bus that started the process.
func onBus(env []byte, addr string) bool {
	for kv := range bytes.SplitSeq(env, []byte{0}) {
		for _, key := range []string{"DBUS_SESSION_BUS_ADDRESS=", "DBUS_STARTER_ADDRESS="} {
			if v, ok := bytes.CutPrefix(kv, []byte(key)); ok {
				if rest, ok := bytes.CutPrefix(v, []byte(addr)); ok && (len(rest) == 0 || rest[0] == ',') {
					return true
				}
			}
		}
	}
	return false
}

// zombie reports whether pid has exited and waits for its parent.
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] == 'Z'
}
