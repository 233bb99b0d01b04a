// Package systemdtest gives a test a real systemd session in one line, in
// the manner of net/http/httptest and watcher/bustest: Boot starts a Debian
// 12 container with systemd as PID 1 (systemd-nspawn), waits until the
// system manager and the user manager of a lingering user are up, and
// registers its teardown. The user's session bus is the socket-activated
// dbus.service user unit, run by dbus-daemon or dbus-broker as the test
// chooses; the system bus likewise. busmedic is in every container at
// BusmedicPath; the test runs commands as the user or as root, starts
// programs in units, and reads unit states and the journal.
//
// The root file system is built once with mmdebstrap and kept in CacheDir;
// each container writes to a layer of its own over it, so containers run
// side by side. Booting needs root, systemd-nspawn (systemd-container) and,
// the first time, mmdebstrap and the Debian mirror: `scripts/ensure-deps
// test` installs them. Where they are missing Boot fails the test with the
// reason; a developer without them sets BUSMEDIC_SYSTEMD=skip to skip these
// tests instead.
package systemdtest

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The user whose session the container runs.
const (
	User = "tester"
	UID  = 1000
)

// SkipEnv is the environment variable that, set to "skip", makes Boot skip
// the test instead of failing it on a machine that cannot boot a container.
const SkipEnv = "BUSMEDIC_SYSTEMD"

// InstallHint says how to get what Boot needs.
const InstallHint = "run scripts/ensure-deps test as root (apt-get install -y --no-install-recommends mmdebstrap systemd-container); " +
	"or set " + SkipEnv + "=skip to skip the tests that boot systemd"

// runtimeDir is the user's XDG_RUNTIME_DIR in the container.
var runtimeDir = fmt.Sprintf("/run/user/%d", UID)

// bootLimit bounds the wait for both managers, which takes about 1 s on an
// idle machine; commandLimit bounds each command a helper runs.
const (
	bootLimit     = 90 * time.Second
	commandLimit  = 60 * time.Second
	shutdownLimit = 30 * time.Second
	// poll is the pause between two looks at a state that gives no event.
	poll = 50 * time.Millisecond
)

// Bus is an implementation of a message bus.
type Bus string

// The bus implementations Debian 12 has. The zero Bus is Daemon.
const (
	// Daemon is dbus-daemon: dbus.service, Debian's default.
	Daemon Bus = "daemon"
	// Broker is dbus-broker: dbus-broker.service, which is then
	// dbus.service too (an alias), as on Fedora and Arch.
	Broker Bus = "broker"
)

// Options says what the container runs. Both buses are chosen before boot:
// switching on a running system hangs logind.
type Options struct {
	// UserBus runs the user's session bus (the dbus.service user unit).
	UserBus Bus
	// SystemBus runs the system bus (dbus.service).
	SystemBus Bus
	// Binds brings host files or directories into the container,
	// read-only: container path → host path. Build makes Go programs for
	// it.
	Binds map[string]string
}

// Machine is a booted container.
type Machine struct {
	// User runs commands as the user, and speaks to the user manager.
	User *Account
	// Root runs commands as root, and speaks to the system manager.
	Root *Account

	t       testing.TB
	name    string
	dir     string
	console string
	cgroups []string
	nspawn  *exec.Cmd
	exited  chan struct{}
	leader  int
}

// machines numbers this process's containers.
var machines atomic.Int64

// Boot boots a container for the test, with both managers running, and
// powers it off when the test ends. If this machine cannot boot one, the
// test fails with the reason (see SkipEnv).
func Boot(t testing.TB, opts Options) *Machine {
	t.Helper()
	if os.Getenv(SkipEnv) == "skip" {
		t.Skipf("systemdtest: %s=skip: not booting systemd", SkipEnv)
	}
	if os.Geteuid() != 0 {
		t.Fatalf("systemdtest: booting a container needs root: run the tests as root, or set %s=skip to skip those that boot systemd", SkipEnv)
	}
	for _, tool := range []string{"systemd-nspawn", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("systemdtest: %v; %s", err, InstallHint)
		}
	}
	hs := hierarchies()
	if len(hs) == 0 {
		t.Fatalf("systemdtest: no cgroup hierarchy under %s for systemd", cgroupRoot)
	}
	binds := map[string]string{BusmedicPath: Build(t, "busmedic/cmd/busmedic")}
	for c, h := range opts.Binds {
		if !filepath.IsAbs(c) || !filepath.IsAbs(h) {
			t.Fatalf("systemdtest: bind %s → %s: both paths must be absolute", h, c)
		}
		binds[c] = h
	}
	lower := rootfs(t)
	run, err := runDir()
	if err != nil {
		t.Fatalf("systemdtest: run directory: %v", err)
	}

	n := machines.Add(1)
	m := &Machine{
		t:      t,
		name:   fmt.Sprintf("bm%d-%d", os.Getpid(), n),
		dir:    filepath.Join(run, fmt.Sprintf("machine-%d", n)),
		exited: make(chan struct{}),
	}
	m.User = &Account{m: m, user: true, name: User, home: "/home/" + User, env: []string{
		"HOME=/home/" + User, "USER=" + User, "LOGNAME=" + User, "SHELL=/bin/bash",
		"PATH=/usr/local/bin:/usr/bin:/bin",
		"XDG_RUNTIME_DIR=" + runtimeDir,
		"DBUS_SESSION_BUS_ADDRESS=unix:path=" + runtimeDir + "/bus",
	}}
	m.Root = &Account{m: m, name: "root", home: "/root", env: []string{
		"HOME=/root", "USER=root", "LOGNAME=root", "SHELL=/bin/bash",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	}}
	upper := filepath.Join(m.dir, "upper")
	if err := os.MkdirAll(upper, 0o755); err != nil {
		t.Fatalf("systemdtest: %v", err)
	}
	t.Cleanup(m.shutdown)
	// The top of the upper layer is the container's /, whatever the umask.
	if err := os.Chmod(upper, 0o755); err != nil {
		t.Fatalf("systemdtest: %v", err)
	}
	if err := chooseBuses(upper, opts); err != nil {
		t.Fatalf("systemdtest: %v", err)
	}
	cgName := cgroupPrefix + filepath.Base(run) + "-" + strconv.FormatInt(n, 10)
	for _, h := range hs {
		cg := filepath.Join(h, cgName)
		if err := os.Mkdir(cg, 0o755); err != nil {
			t.Fatalf("systemdtest: create cgroup: %v", err)
		}
		m.cgroups = append(m.cgroups, cg)
	}

	args := []string{
		"-D", lower, "--read-only",
		// Each container writes to its own layer; the tree stays as built.
		"--overlay=" + nspawnPath(lower) + ":" + nspawnPath(upper) + ":/",
		"--boot",
		// No machined on the host to register with, and the cgroup we
		// made is the container's.
		"--register=no", "--keep-unit",
		"--machine=" + m.name,
		// Only a loopback: abstract sockets are per network namespace,
		// and the containers must not see each other's or the host's.
		"--private-network",
		"--link-journal=no",
		"--console=read-only",
	}
	for _, c := range slices.Sorted(maps.Keys(binds)) { // parents before children
		args = append(args, "--bind-ro="+nspawnPath(binds[c])+":"+nspawnPath(c))
	}
	m.console = filepath.Join(m.dir, "console.log")
	console, err := os.Create(m.console)
	if err != nil {
		t.Fatalf("systemdtest: %v", err)
	}
	defer console.Close()
	// A process enters a cgroup v1 hierarchy only by pid: the shell writes
	// its own pid into each cgroup, then becomes systemd-nspawn, which so
	// starts in them (moving nspawn once it runs would race with it
	// reading its cgroup).
	const enter = `while [ "$1" != -- ]; do echo $$ > "$1/cgroup.procs" || exit 125; shift; done; shift; exec "$@"`
	shArgs := append([]string{"-c", enter, "sh"}, m.cgroups...)
	shArgs = append(shArgs, "--", "systemd-nspawn")
	m.nspawn = exec.Command("/bin/sh", append(shArgs, args...)...)
	m.nspawn.Stdout, m.nspawn.Stderr = console, console
	// SIGTERM asks nspawn to power the container off: what happens if
	// the test process dies without its cleanup (killed by -timeout).
	m.nspawn.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGTERM}
	start := time.Now()
	if err := m.nspawn.Start(); err != nil {
		m.nspawn = nil
		t.Fatalf("systemdtest: start systemd-nspawn: %v", err)
	}
	go func() {
		m.nspawn.Wait()
		close(m.exited)
	}()
	m.waitBoot()
	t.Logf("systemdtest: %s booted in %s (user bus %s, system bus %s)", m.name,
		time.Since(start).Round(10*time.Millisecond), busName(opts.UserBus), busName(opts.SystemBus))
	return m
}

// Name returns the container's machine name, unique among those running.
func (m *Machine) Name() string { return m.name }

// busName is b, with the zero Bus spelled out.
func busName(b Bus) Bus {
	if b == "" {
		return Daemon
	}
	return b
}

// chooseBuses writes the bus choice into the container's own layer: the
// tree has none (dbus-daemon); dbus-broker becomes dbus.service through the
// alias its installation would have made.
func chooseBuses(upper string, opts Options) error {
	for _, c := range []struct {
		bus       Bus
		dir, unit string
	}{
		{opts.SystemBus, "etc/systemd/system", "/usr/lib/systemd/system/dbus-broker.service"},
		{opts.UserBus, "etc/systemd/user", "/usr/lib/systemd/user/dbus-broker.service"},
	} {
		switch busName(c.bus) {
		case Daemon:
		case Broker:
			dir := filepath.Join(upper, c.dir)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("choose dbus-broker: %w", err)
			}
			if err := os.Symlink(c.unit, filepath.Join(dir, "dbus.service")); err != nil {
				return fmt.Errorf("choose dbus-broker: %w", err)
			}
		default:
			return fmt.Errorf("bus %q: want %q or %q", c.bus, Daemon, Broker)
		}
	}
	return nil
}

// nspawnPath escapes a path for systemd-nspawn's colon-separated options.
func nspawnPath(p string) string {
	return strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(p)
}

// waitBoot waits until the system manager and the user manager have
// finished starting up ("running", or "degraded" if a unit failed), or
// fails the test.
func (m *Machine) waitBoot() {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bootLimit)
	defer cancel()
	system, user := "", ""
	for {
		if m.leader == 0 {
			m.leader = findLeader(m.nspawn.Process.Pid)
		}
		if m.leader != 0 && !up(system) {
			// --wait returns when the boot is done; before the manager
			// listens it fails at once, and the loop asks again.
			system = m.Root.state(ctx, "systemctl", "is-system-running", "--wait")
		}
		if up(system) {
			user = m.User.state(ctx, "systemctl", "--user", "is-system-running", "--wait")
			if up(user) {
				break
			}
		}
		select {
		case <-m.exited:
			log, _ := os.ReadFile(m.console)
			m.t.Fatalf("systemdtest: systemd-nspawn exited while booting (%v):\n%s", m.nspawn.ProcessState, tail(string(log), 40))
		case <-ctx.Done():
			log, _ := os.ReadFile(m.console)
			m.t.Fatalf("systemdtest: %s not up within %s (leader pid %d, system manager %q, user manager %q):\n%s",
				m.name, bootLimit, m.leader, system, user, tail(string(log), 40))
		case <-time.After(poll):
		}
	}
	if system == "degraded" || user == "degraded" {
		failed := m.Root.state(ctx, "systemctl", "list-units", "--failed", "--no-legend")
		userFailed := m.User.state(ctx, "systemctl", "--user", "list-units", "--failed", "--no-legend")
		m.t.Logf("systemdtest: %s is degraded; failed units:\n%s\nfailed user units:\n%s", m.name, failed, userFailed)
	}
}

func up(state string) bool { return state == "running" || state == "degraded" }

// findLeader returns the container's PID 1 as the host sees it: the child
// of nspawn in a pid namespace of its own (nspawn's other, short-lived
// child stays in ours), or 0.
func findLeader(nspawn int) int {
	ours, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return 0
	}
	for _, pid := range children(nspawn) {
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); err == nil && ns != ours {
			return pid
		}
	}
	return 0
}

// children lists the processes whose parent is ppid (host pids).
func children(ppid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var kids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the command name, which may hold spaces: the
		// state, then the parent.
		i := strings.LastIndexByte(string(stat), ')')
		f := strings.Fields(string(stat[i+1:]))
		if len(f) >= 2 && f[1] == strconv.Itoa(ppid) {
			kids = append(kids, pid)
		}
	}
	return kids
}

// shutdown powers the container off (nspawn turns SIGTERM into a poweroff
// request to the container's systemd), kills what is left if that takes
// too long, and removes the container's cgroups and files.
func (m *Machine) shutdown() {
	if m.t.Failed() && m.leader != 0 && m.running() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out := m.Root.state(ctx, "journalctl", "--no-pager", "-o", "short-monotonic", "-n", "150")
		cancel()
		m.t.Logf("systemdtest: the end of %s's journal:\n%s", m.name, out)
	}
	if m.nspawn != nil {
		m.nspawn.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.exited:
		case <-time.After(shutdownLimit):
			m.t.Errorf("systemdtest: %s not powered off within %s; killing it", m.name, shutdownLimit)
			for _, cg := range m.cgroups {
				removeCgroup(cg)
			}
			m.nspawn.Process.Kill()
			<-m.exited
		}
	}
	for _, cg := range m.cgroups {
		if err := removeCgroup(cg); err != nil {
			m.t.Errorf("systemdtest: %v", err)
		}
	}
	if err := os.RemoveAll(m.dir); err != nil {
		m.t.Errorf("systemdtest: %v", err)
	}
}

// running reports whether nspawn still runs.
func (m *Machine) running() bool {
	select {
	case <-m.exited:
		return false
	default:
		return m.nspawn != nil
	}
}
