// Package e2e runs whole desktop sessions in miniature, with real
// programs: busmedic as a user installs it, an X server (Xvfb), real buses
// (dbus-daemon) and each desktop's real panel from Debian, and restarts the
// session bus under them.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"busmedic/appdb"
	"busmedic/assets"
	"busmedic/relaunch/control"
	"busmedic/watcher"
	"busmedic/watcher/bustest"
)

// Limits of the waits. Every wait is on a condition, re-checked at every
// signal on the bus and every pollEvery, with a deadline that only a
// failure reaches.
const (
	// startLimit bounds a desktop's start, or its return after a bus
	// restart: Xfce's panel waits 5 s for a window manager that never
	// comes (Xvfb has none) before it loads its plugins, and Plasma's
	// shell takes seconds to load its applets with software rendering.
	startLimit = time.Minute
	// waitLimit bounds the rest: an exit, a recovery's end.
	waitLimit = 20 * time.Second
	pollEvery = 20 * time.Millisecond
	// casualtyGrace is the daemon's: the time an unmatched peer has to
	// come back before busmedic counts it as fallen off
	// (appdb.DefaultGrace). That nobody fell off can only be told once it
	// has passed.
	casualtyGrace = appdb.DefaultGrace
)

// The StatusNotifier protocol's names.
const (
	watcherName   = "org.kde.StatusNotifierWatcher"
	watcherPath   = "/StatusNotifierWatcher"
	hostPrefix    = "org.kde.StatusNotifierHost-"
	notifications = "org.freedesktop.Notifications"
)

// TestSession runs each desktop of desktops (Xfce, LXQt, KDE Plasma)
// under Xvfb with its real panel, and busmedic run with the rules its
// first run offers for that session (the shipped catalog). The session bus
// is stopped with SIGTERM (as systemd and package scripts do: the daemon
// says goodbye for every peer first) and started again at the same
// address, then killed with SIGKILL and started again. After each: every
// program that died with its bus, or stayed alive but deaf (then busmedic
// stopped it), is back in a new process, one of each; the tray's watcher
// is the new panel's (or kded5's), the host is the new panel and
// busmedic's item is registered with the watcher; the notification server
// works again; the item's tooltip says all is well (nobody fell off: not
// busmedic, not the old panel's helpers); busmedic history tells each
// relaunch.
func TestSession(t *testing.T) {
	bin := buildBusmedic(t)
	for _, d := range desktops() {
		t.Run(d.name, func(t *testing.T) {
			s := startSession(t, d, bin)
			for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
				t0, old := s.restart(sig, false)
				back := s.until("the panel back with busmedic's item", startLimit, func() error { return s.panelBack(old) })
				t.Logf("%s %s: panel back with busmedic's item %s after the bus", d.name, sigName(sig), back.Sub(t0).Round(time.Millisecond))
				s.checkRecovered(t0, old, true)
			}
			if out, err := exec.Command(bin, "history").CombinedOutput(); err == nil {
				t.Logf("busmedic history:\n%s", out)
			}
		})
	}
}

// buildBusmedic builds busmedic as the Makefile does.
func buildBusmedic(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "busmedic")
	build := exec.Command("go", "build", "-o", bin, "busmedic/cmd/busmedic")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build busmedic: %v\n%s", err, out)
	}
	return bin
}

// session is one desktop session: its X display, its buses, its programs,
// busmedic run, and a connection of the test's to the session bus.
type session struct {
	t    testing.TB
	d    desktop
	bin  string
	root string // home, XDG directories, logs
	bus  *bustest.Bus
	apps []sessionApp
	// client speaks to busmedic run's control socket.
	client *control.Client
	daemon *exec.Cmd
	exited chan struct{} // closed when busmedic run has exited

	// conn is the test's own connection to the session bus, made again
	// after each restart; signals gets its signals (NameOwnerChanged, the
	// watcher's), which wake the waits.
	conn    *dbus.Conn
	signals chan *dbus.Signal

	mu     sync.Mutex
	direct []*directProc // the processes the test started itself
}

// sessionApp is a program of the desktop, with its catalog entry.
type sessionApp struct {
	deskApp
	assets.CatalogApp
}

// directProc is a process the test started.
type directProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// startSession starts desktop d with busmedic run: the X server, the
// system and the session bus, the desktop's programs in order, each fully
// up before the next, then busmedic with the rules its first run offers
// for them. It returns once busmedic's item is in the panel and healthy.
func startSession(t testing.TB, d desktop, bin string) *session {
	t.Helper()
	catalog, err := assets.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	s := &session{t: t, d: d, bin: bin, exited: make(chan struct{})}
	for _, da := range d.apps {
		i := slices.IndexFunc(catalog, func(a assets.CatalogApp) bool { return a.ID == da.id })
		if i < 0 {
			t.Fatalf("%s: no catalog entry %q", d.name, da.id)
		}
		a := sessionApp{deskApp: da, CatalogApp: catalog[i]}
		if _, err := os.Stat(a.Exe); err != nil {
			t.Fatalf("%s is not installed (%v): run scripts/ensure-deps test", a.Exe, err)
		}
		s.apps = append(s.apps, a)
	}
	// A short directory: the control socket's path must fit in 107 bytes.
	root, err := os.MkdirTemp("", "e2e-"+d.name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	s.root = root
	for _, dir := range []string{"home", "config/busmedic", "data", "cache", "state", "run", "services", "logs"} {
		if err := os.MkdirAll(filepath.Join(root, dir), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if d.prepare != nil {
		d.prepare(t, root)
	}

	display := bustest.StartXvfb(t, 1280, 800)
	// The session's environment is the test process's, until the test
	// ends: the bus daemons take it at their start and pass it on to the
	// services they start on demand, as in a desktop session.
	env := map[string]string{"DISPLAY": display.Name, "HOME": root + "/home",
		"XDG_CONFIG_HOME": root + "/config", "XDG_DATA_HOME": root + "/data", "XDG_CACHE_HOME": root + "/cache",
		"XDG_STATE_HOME": root + "/state", "XDG_RUNTIME_DIR": root + "/run"}
	for k, v := range d.env {
		env[k] = strings.ReplaceAll(v, "{root}", root)
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	for _, k := range []string{"DBUS_SESSION_BUS_ADDRESS", "DBUS_SYSTEM_BUS_ADDRESS", "DBUS_STARTER_ADDRESS",
		"DBUS_STARTER_BUS_TYPE", "WAYLAND_DISPLAY", "XDG_SESSION_ID", "SESSION_MANAGER", "BUSMEDIC_CONFIG"} {
		t.Setenv(k, "") // restored when the test ends
		os.Unsetenv(k)
	}
	system := bustest.New(t, bustest.SystemType())
	opt := bustest.ServiceDir(root + "/services")
	if d.stock {
		opt = bustest.Stock()
	}
	s.bus = bustest.New(t, opt)
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", system.Address())
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", s.bus.Address())
	// Before the bus's own cleanup: the session's processes first, the
	// bus, then the X server.
	t.Cleanup(s.close)
	s.connect()

	for _, a := range s.apps {
		s.startDirect(a)
		s.until(a.ID+" fully up", startLimit, func() error { return s.owned(a, nil) })
	}
	s.writeOfferedRules()

	log, err := os.Create(filepath.Join(root, "logs", "busmedic.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	s.daemon = exec.Command(bin, "run", "-v")
	s.daemon.Stdout, s.daemon.Stderr = log, log
	if err := s.daemon.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.daemon.Wait(); close(s.exited) }()
	s.client = control.NewClient(filepath.Join(root, "run", "busmedic", "control.sock"))
	s.until("every app running in busmedic status", waitLimit, func() error {
		st, err := s.status()
		if err != nil {
			return err
		}
		for _, a := range s.apps {
			if i := slices.IndexFunc(st.Apps, func(as control.AppStatus) bool { return as.ID == a.ID }); i < 0 || !st.Apps[i].Running {
				return fmt.Errorf("%s not running", a.ID)
			}
		}
		return nil
	})
	s.until("busmedic's item in the panel", waitLimit, s.itemRegistered)
	s.until("a healthy icon", waitLimit, func() error { return s.tooltipSays("all buses up") })
	return s
}

// close ends busmedic run and every process of the session; on failure it
// shows the logs first.
func (s *session) close() {
	if s.t.Failed() {
		s.dumpLogs()
	}
	if s.conn != nil {
		s.conn.Close()
	}
	if s.daemon != nil && s.daemon.Process != nil {
		s.daemon.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(waitLimit):
			s.daemon.Process.Kill()
			<-s.exited
		}
	}
	s.bus.KillClients()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.direct {
		<-p.exited
	}
}

func (s *session) dumpLogs() {
	if s.client != nil {
		if st, err := s.status(); err == nil {
			s.t.Logf("busmedic status: %s", statusText(st))
		}
	}
	logs, _ := filepath.Glob(filepath.Join(s.root, "logs", "*.log"))
	more, _ := filepath.Glob(filepath.Join(s.root, "state", "busmedic", "logs", "*.log*"))
	for _, l := range append(logs, more...) {
		b, _ := os.ReadFile(l)
		if len(b) > 6000 {
			b = b[len(b)-6000:]
		}
		s.t.Logf("--- %s:\n%s", l, b)
	}
}

// startDirect starts app a as the session does: in a session of its own,
// in the home directory, output to a file.
func (s *session) startDirect(a sessionApp) {
	out, err := os.OpenFile(filepath.Join(s.root, "logs", a.ID+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(a.Exe)
	// The session's environment is the test process's (startSession).
	cmd.Stdout, cmd.Stderr, cmd.Dir = out, out, s.root+"/home"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	p := &directProc{cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(p.exited) }()
	s.mu.Lock()
	s.direct = append(s.direct, p)
	s.mu.Unlock()
}

// connect makes the test's connection to the session bus, once it is up,
// and subscribes to what the waits wait on.
func (s *session) connect() {
	s.t.Helper()
	if s.conn != nil {
		s.conn.Close()
	}
	conn, err := dbus.Connect(s.bus.Address())
	if err != nil {
		s.t.Fatalf("connect to the session bus: %v", err)
	}
	s.conn, s.signals = conn, make(chan *dbus.Signal, 256)
	conn.Signal(s.signals)
	for _, m := range [][]dbus.MatchOption{
		{dbus.WithMatchSender("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged")},
		{dbus.WithMatchInterface(watcherName)},
	} {
		if err := conn.AddMatchSignal(m...); err != nil {
			s.t.Fatalf("subscribe: %v", err)
		}
	}
}

// until re-checks cond at every signal on the bus and every pollEvery
// until it holds, and returns when it first held; past limit it fails the
// test with cond's last error.
func (s *session) until(what string, limit time.Duration, cond func() error) time.Time {
	s.t.Helper()
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return time.Now()
		}
		select {
		case _, ok := <-s.signals:
			if !ok {
				s.signals = nil // the bus went: the ticker wakes the waits
			}
		case <-tick.C:
		case <-deadline.C:
			s.t.Fatalf("%s: no %s within %s: %v", s.d.name, what, limit, err)
		}
	}
}

// call calls method on the bus object, or on dest at path, with a
// deadline.
func (s *session) call(dest, path, method string, args ...any) *dbus.Call {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if dest == "" {
		return s.conn.BusObject().CallWithContext(ctx, method, 0, args...)
	}
	return s.conn.Object(dest, dbus.ObjectPath(path)).CallWithContext(ctx, method, 0, args...)
}

// uniquePID returns the pid of the connection with a unique name.
func (s *session) uniquePID(unique string) (int, error) {
	var pid uint32
	if err := s.call("", "", "org.freedesktop.DBus.GetConnectionUnixProcessID", unique).Store(&pid); err != nil {
		return 0, fmt.Errorf("pid of %s: %w", unique, err)
	}
	return int(pid), nil
}

// ownerPID returns the pid of the process that owns name.
func (s *session) ownerPID(name string) (int, error) {
	var owner string
	if err := s.call("", "", "org.freedesktop.DBus.GetNameOwner", name).Store(&owner); err != nil {
		return 0, fmt.Errorf("owner of %s: %w", name, err)
	}
	return s.uniquePID(owner)
}

// ownerProc returns the process that owns name.
func (s *session) ownerProc(name string) (proc, error) {
	pid, err := s.ownerPID(name)
	if err != nil {
		return proc{}, err
	}
	return procOf(pid)
}

// owned checks that a is fully up in a process that is none of old: its
// catalog names are owned by one process running its program, its ready
// names by that process or one it started (Xfce's systray plugin).
func (s *session) owned(a sessionApp, old []proc) error {
	var first proc
	for _, n := range a.Names {
		p, err := s.ownerProc(n)
		if err != nil {
			return err
		}
		switch exe := exeOf(p.pid); {
		case exe != a.Exe:
			return fmt.Errorf("%s is owned by pid %d, which runs %s, not %s", n, p.pid, exe, a.Exe)
		case first.pid != 0 && p != first:
			return fmt.Errorf("%s is owned by pid %d, other names of %s by pid %d", n, p.pid, a.ID, first.pid)
		case slices.Contains(old, p):
			return fmt.Errorf("%s is owned by pid %d, the old %s", n, p.pid, a.ID)
		}
		first = p
	}
	for _, n := range a.ready {
		p, err := s.ownerProc(n)
		if err != nil {
			return err
		}
		if p != first && parent(p.pid) != first.pid {
			return fmt.Errorf("%s is owned by pid %d, neither %s (pid %d) nor its child", n, p.pid, a.ID, first.pid)
		}
	}
	return nil
}

// app returns the session's app with catalog id id.
func (s *session) app(id string) sessionApp {
	i := slices.IndexFunc(s.apps, func(a sessionApp) bool { return a.ID == id })
	if i < 0 {
		s.t.Fatalf("%s: no app %q", s.d.name, id)
	}
	return s.apps[i]
}

// appProc returns the process of app id: the owner of its first name.
func (s *session) appProc(id string) (proc, error) { return s.ownerProc(s.app(id).Names[0]) }

// peers lists who is on the session bus, with their names and processes,
// as busmedic's first run sees them.
func (s *session) peers() []watcher.Peer {
	var names []string
	if err := s.call("", "", "org.freedesktop.DBus.ListNames").Store(&names); err != nil {
		s.t.Fatal(err)
	}
	byUnique := map[string]*watcher.Peer{}
	for _, n := range names {
		if !strings.HasPrefix(n, ":") {
			continue
		}
		pid, err := s.uniquePID(n)
		if err != nil {
			continue
		}
		p, err := watcher.ProcessInfo(pid)
		if err != nil {
			continue
		}
		p.UniqueName = n
		byUnique[n] = &p
	}
	for _, n := range names {
		var owner string
		if strings.HasPrefix(n, ":") || s.call("", "", "org.freedesktop.DBus.GetNameOwner", n).Store(&owner) != nil || byUnique[owner] == nil {
			continue
		}
		byUnique[owner].Names = append(byUnique[owner].Names, n)
	}
	var out []watcher.Peer
	for _, p := range byUnique {
		slices.Sort(p.Names)
		out = append(out, *p)
	}
	return out
}

// writeOfferedRules writes the rules file a user gets who says yes to
// every offer of busmedic's first run in this session; every app of the
// desktop must be offered.
func (s *session) writeOfferedRules() {
	s.t.Helper()
	catalog, _ := assets.Catalog()
	path := filepath.Join(s.root, "config", "busmedic", "apps.toml")
	if err := appdb.WriteStarter(path); err != nil {
		s.t.Fatal(err)
	}
	f, err := appdb.OpenFile(path)
	if err != nil {
		s.t.Fatal(err)
	}
	offers := appdb.Offers(catalog, s.peers(), nil)
	for _, a := range s.apps {
		i := slices.IndexFunc(offers, func(o appdb.Offer) bool { return o.App.ID == a.ID })
		if i < 0 {
			s.t.Fatalf("%s: the first run offers no rule for %s", s.d.name, a.ID)
		}
		if err := f.AddOrReplace(offers[i].Rule); err != nil {
			s.t.Fatal(err)
		}
	}
	if err := f.Save(); err != nil {
		s.t.Fatal(err)
	}
	if testing.Verbose() {
		s.t.Logf("%s: the offered rules:\n%s", s.d.name, rulesOnly(f.Bytes()))
	}
}

// rulesOnly drops the starter's comment lines.
func rulesOnly(b []byte) string {
	var keep []string
	for l := range strings.Lines(string(b)) {
		if !strings.HasPrefix(l, "#") && strings.TrimSpace(l) != "" {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "")
}

func (s *session) status() (control.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.client.Status(ctx)
}

// running returns the session's processes that run exe.
func (s *session) running(exe string) []int {
	return slices.DeleteFunc(s.bus.Clients(), func(pid int) bool { return exeOf(pid) != exe })
}

// settle waits until the desktop is up and idle: each of its programs,
// with the processes it started, used at most one clock tick (10 ms) of CPU
// over the last half second. Bus restarts hit desktops that are up, not
// programs still loading their modules (a kded5 whose bus dies while its
// kconf_update runs ignores SIGTERM until busmedic kills it).
func (s *session) settle() {
	s.t.Helper()
	var pids []int
	for _, a := range s.apps {
		p, err := s.appProc(a.ID)
		if err != nil {
			s.t.Fatalf("%s: %v", a.ID, err)
		}
		pids = append(pids, p.pid)
	}
	deadline := time.After(startLimit)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var used []uint64 // CPU ticks of them all, one sample per tick
	for {
		var n uint64
		for _, pid := range pids {
			n += treeTicks(pid)
		}
		used = append(used, n)
		if k := len(used); k > 5 && used[k-1]-used[k-6] <= 1 {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			s.t.Fatalf("%s: the desktop still busy after %s", s.d.name, startLimit)
		}
	}
}

// snapshot is who ran the desktop before a restart.
type snapshot struct {
	apps    map[string]proc // by app id
	watcher proc
}

func (o snapshot) procs() []proc {
	out := []proc{o.watcher}
	for _, p := range o.apps {
		out = append(out, p)
	}
	return out
}

// restart stops the session bus with sig, once the desktop is settled, and
// starts it again at the same address, once every program that dies with
// its bus has exited, and returns the moment the new daemon accepts
// connections, with who ran the desktop before. A deaf program must still
// live when the bus starts again; floor (the benchmark's) kills it then,
// as a user would before starting the desktop's programs again by hand.
func (s *session) restart(sig syscall.Signal, floor bool) (time.Time, snapshot) {
	s.t.Helper()
	s.settle()
	old := snapshot{apps: map[string]proc{}}
	for _, a := range s.apps {
		p, err := s.appProc(a.ID)
		if err != nil {
			s.t.Fatalf("%s before the restart: %v", a.ID, err)
		}
		old.apps[a.ID] = p
	}
	w, err := s.ownerProc(watcherName)
	if err != nil {
		s.t.Fatalf("the watcher before the restart: %v", err)
	}
	old.watcher = w
	if sig == syscall.SIGTERM {
		s.bus.Stop()
	} else {
		s.bus.Kill()
	}
	for _, a := range s.apps {
		p := old.apps[a.ID]
		switch a.Behaviour {
		case assets.Exits:
			s.until(fmt.Sprintf("exit of %s (pid %d) with its bus", a.ID, p.pid), waitLimit, func() error {
				return errIf(p.alive(), "it runs")
			})
		case assets.Deaf:
			if !p.alive() {
				s.t.Fatalf("%s (pid %d) exited with its bus: the catalog says it stays deaf", a.ID, p.pid)
			}
			if floor {
				syscall.Kill(p.pid, syscall.SIGKILL)
				s.until(fmt.Sprintf("exit of %s (pid %d), killed", a.ID, p.pid), waitLimit, func() error {
					return errIf(p.alive(), "it runs")
				})
			}
		}
	}
	s.bus.Start()
	t0 := time.Now()
	s.connect()
	return t0, old
}

// panelBack checks that the desktop's panel is back with busmedic's item:
// the watcher is owned by the new watcher program (or a process it
// started, as Xfce's systray plugin), busmedic's item is registered with
// it, a host is registered, and a named host is the new host program's.
func (s *session) panelBack(old snapshot) error {
	w, err := s.ownerProc(watcherName)
	if err != nil {
		return err
	}
	wapp := s.app(s.d.watcher)
	panel, err := s.appProc(wapp.ID)
	if err != nil {
		return err
	}
	switch {
	case w == old.watcher || panel == old.apps[wapp.ID]:
		return fmt.Errorf("the watcher is the old one (pid %d)", w.pid)
	case exeOf(panel.pid) != wapp.Exe:
		return fmt.Errorf("%s is not owned by %s", wapp.Names[0], wapp.Exe)
	case w != panel && parent(w.pid) != panel.pid:
		return fmt.Errorf("the watcher (pid %d) is neither the new %s (pid %d) nor its child", w.pid, wapp.ID, panel.pid)
	}
	if err := s.itemRegistered(); err != nil {
		return err
	}
	var v dbus.Variant
	if err := s.call(watcherName, watcherPath, "org.freedesktop.DBus.Properties.Get", watcherName, "IsStatusNotifierHostRegistered").Store(&v); err != nil {
		return err
	}
	if registered, _ := v.Value().(bool); !registered {
		return errors.New("no host registered with the watcher")
	}
	if s.d.host == "" {
		return nil
	}
	host, err := s.appProc(s.d.host)
	if err != nil {
		return err
	}
	if host == old.apps[s.d.host] {
		return fmt.Errorf("%s is the old one (pid %d)", s.d.host, host.pid)
	}
	var names []string
	if err := s.call("", "", "org.freedesktop.DBus.ListNames").Store(&names); err != nil {
		return err
	}
	for _, n := range names {
		if strings.HasPrefix(n, hostPrefix) {
			if p, err := s.ownerProc(n); err == nil && p == host {
				return nil
			}
		}
	}
	return fmt.Errorf("the new %s (pid %d) owns no %s* name", s.d.host, host.pid, hostPrefix)
}

// item returns busmedic's item among the items registered with the
// watcher: the one whose process runs the busmedic binary.
func (s *session) item() (dest, path string, err error) {
	var v dbus.Variant
	if err := s.call(watcherName, watcherPath, "org.freedesktop.DBus.Properties.Get", watcherName, "RegisteredStatusNotifierItems").Store(&v); err != nil {
		return "", "", err
	}
	items, _ := v.Value().([]string)
	for _, it := range items {
		dest, path, ok := strings.Cut(it, "/")
		path = "/" + path
		if !ok {
			path = "/StatusNotifierItem"
		}
		pid, err := s.uniquePID(dest)
		if err == nil && exeOf(pid) == s.bin {
			return dest, path, nil
		}
	}
	return "", "", fmt.Errorf("busmedic's item is not among the watcher's items %q", items)
}

func (s *session) itemRegistered() error { _, _, err := s.item(); return err }

// tooltipSays checks that the tooltip of busmedic's item, as the panel
// reads it, holds text.
func (s *session) tooltipSays(text string) error {
	dest, path, err := s.item()
	if err != nil {
		return err
	}
	var v dbus.Variant
	if err := s.call(dest, path, "org.freedesktop.DBus.Properties.Get", "org.kde.StatusNotifierItem", "ToolTip").Store(&v); err != nil {
		return err
	}
	tip := fmt.Sprint(v.Value())
	if !strings.Contains(tip, text) {
		return fmt.Errorf("the tooltip says %q", tip)
	}
	return nil
}

// checkRecovered checks the rest of a recovery that began at t0, after
// the panel is back: every app back in a new process, once; the deaf old
// copies gone; the notification server working; busmedic history telling
// each relaunch; the icon healthy, nobody fallen off. relaunched is false
// for the benchmark's floor, where busmedic was paused.
func (s *session) checkRecovered(t0 time.Time, old snapshot, relaunched bool) {
	s.t.Helper()
	for _, a := range s.apps {
		s.until(a.ID+" back, fully up", startLimit, func() error { return s.owned(a, old.procs()) })
		s.until("the end of the old "+a.ID, waitLimit, func() error {
			return errIf(old.apps[a.ID].alive(), "pid %d runs", old.apps[a.ID].pid)
		})
		s.until("one "+a.ID, waitLimit, func() error {
			n := s.running(a.Exe)
			return errIf(len(n) != 1, "%d processes run %s: %v", len(n), a.Exe, n)
		})
	}
	if s.d.notifier != "" {
		s.until("a notification shown", waitLimit, func() error {
			p, err := s.ownerProc(notifications)
			if err != nil {
				return err
			}
			if want, err := s.appProc(s.d.notifier); err != nil || p != want {
				return fmt.Errorf("%s is owned by pid %d, not by %s (%v)", notifications, p.pid, s.d.notifier, err)
			}
			var id uint32
			return s.call(notifications, "/org/freedesktop/Notifications", notifications+".Notify",
				"busmedic e2e", uint32(0), "", "busmedic test", "after the restart", []string{},
				map[string]dbus.Variant{}, int32(1000)).Store(&id)
		})
	}
	if !relaunched {
		return
	}
	s.until("every app relaunched in busmedic history", waitLimit, func() error {
		r, err := s.lastRecovery(t0)
		if err != nil {
			return err
		}
		for _, a := range s.apps {
			j := slices.IndexFunc(r.Jobs, func(j control.Job) bool { return j.App == a.ID })
			if j < 0 || r.Jobs[j].Outcome != control.Relaunched {
				return fmt.Errorf("%s not relaunched: %+v", a.ID, r.Jobs)
			}
		}
		return nil
	})
	// Nobody fell off: told once the casualty grace has passed since
	// busmedic took the restart.
	s.until("a healthy icon, nobody fallen off", waitLimit, func() error {
		st, err := s.status()
		if err != nil {
			return err
		}
		switch {
		case st.LastRecovery == nil:
			return errors.New("no recovery")
		case st.Time.Sub(st.LastRecovery.Started) < casualtyGrace+time.Second:
			return errors.New("within the casualty grace")
		case len(st.Casualties) > 0:
			return fmt.Errorf("fell off: %s", statusText(st))
		}
		return s.tooltipSays("all buses up")
	})
	select {
	case <-s.exited:
		s.t.Fatalf("busmedic run exited: %v", s.daemon.ProcessState)
	default:
	}
}

// lastRecovery returns busmedic's recovery of the session bus that began
// after t0, once it has ended.
func (s *session) lastRecovery(t0 time.Time) (control.Recovery, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	h, err := s.client.History(ctx, 5)
	if err != nil {
		return control.Recovery{}, err
	}
	// The stops of deaf old copies are entries of their own, after the
	// recovery they followed.
	deafStops := func(r control.Recovery) bool {
		return len(r.Jobs) > 0 && !slices.ContainsFunc(r.Jobs, func(j control.Job) bool { return j.Action != "stop" })
	}
	i := slices.IndexFunc(h, func(r control.Recovery) bool { return r.Bus == "session" && !deafStops(r) })
	switch {
	case i < 0 || h[i].Started.Before(t0.Add(-time.Second)):
		return control.Recovery{}, errors.New("no recovery of the session bus since the restart")
	case h[i].Ended.IsZero():
		return control.Recovery{}, errors.New("the recovery runs")
	}
	return h[i], nil
}

func sigName(sig syscall.Signal) string {
	if sig == syscall.SIGTERM {
		return "SIGTERM"
	}
	return "SIGKILL"
}

// statusText is the status as busmedic status prints it.
func statusText(st control.Status) string {
	var b strings.Builder
	st.WriteText(&b)
	return b.String()
}

func errIf(cond bool, format string, args ...any) error {
	if cond {
		return fmt.Errorf(format, args...)
	}
	return nil
}
