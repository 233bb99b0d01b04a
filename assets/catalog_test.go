package assets_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/prop"

	"busmedic/appdb"
	"busmedic/assets"
	"busmedic/watcher/bustest"
)

// claimDeadline bounds each wait: a real program starting on Xvfb, or
// exiting after its bus died, takes well under a second here, Plasma's
// shell a few seconds.
const claimDeadline = 30 * time.Second

// deafWindow is how long a program the catalog calls deaf is watched not
// to come back to the restarted bus: more than the default grace (2 s),
// which the rules offered for deaf programs leave out.
const deafWindow = 5 * time.Second

const watcherName = "org.kde.StatusNotifierWatcher"

func TestCatalogParses(t *testing.T) {
	apps, err := assets.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	if len(apps) == 0 {
		t.Fatal("empty catalog")
	}
	for _, a := range apps {
		if !a.Verified && !strings.HasPrefix(a.Evidence, "not verified: ") {
			t.Errorf("%s: an unverified entry's evidence must start with \"not verified: \" and say why", a.ID)
		}
		if a.Action != assets.Relaunch {
			t.Errorf("%s: action %q, want %q (the default)", a.ID, a.Action, assets.Relaunch)
		}
	}
	for _, bad := range []string{
		`[[app]]
id = "x"
exe = "x"
behaviour = "exits"
evidence = "e"`,
		`[[app]]
id = "x"
exe = "/usr/bin/x"
behaviour = "vanishes"
evidence = "e"`,
		`[[app]]
id = "x"
exe = "/usr/bin/x"
behaviour = "exits"`,
		`[[app]]
id = "x"
names = ["a.b"]
behaviour = "exits"
evidence = "e"
verified = true`,
		`[[app]]
id = "x"
exe = "/usr/bin/x"
behaviour = "exits"
evidence = "e"
colour = "red"`,
		`[[app]]
id = "x"
exe = "/usr/bin/x"
behaviour = "deaf"
action = "signal"
evidence = "e"`,
		`[[app]]
id = "x"
exe = "/usr/bin/x"
behaviour = "deaf"
after = [":1.4"]
evidence = "e"`,
		`[[app]]
id = "x"
exe = "/usr/bin/x"
names = ["org.example.X"]
behaviour = "deaf"
tray = "watcher"
evidence = "e"`,
		`[[app]]
id = "x"
exe = "/usr/bin/x"
behaviour = "deaf"
tray = "icon"
evidence = "e"`,
		`[[app]]
id = "x"
exe = "/usr/bin/x"
behaviour = "deaf"
desktop = "GNOME"
evidence = "e"`,
	} {
		if _, err := assets.ParseCatalog([]byte(bad)); err == nil {
			t.Errorf("ParseCatalog accepted:\n%s", bad)
		}
	}
}

// TestCatalogClaims checks every verified claim of the catalog on this
// machine, the evidence catalog.toml cites. The real program, started on a
// real dbus-daemon (and Xvfb when it needs a display), owns its names; then
// its bus is killed with SIGKILL, or stopped with SIGTERM, and:
//
//   - behaviour "exits": the program exits;
//   - behaviour "deaf": it lives on, and does not come back to the bus
//     started again at the same address within deafWindow; SIGTERM, as a
//     relaunch sends it, ends it within the default stop timeout.
//
// Then the action: relaunch starts the program again on the new bus, with
// only its after names there (none today), and it owns all its names; a
// tray watcher takes a tray icon's registration, and a tray host
// registers with a watcher that appears after it started (so that it
// needs no after).
//
// A program of a desktop (KDE, LXQt) runs in that desktop session's
// environment, on a bus with the distribution's configuration, which
// starts the desktop's services on demand as in a real session (Plasma's
// shell loads no panel until the activity manager is there). Its home
// directory is one it has run in before: the first start in a new home
// does a first login's work (kded5 runs kconf_update, whose helpers go
// deaf with the bus and hold kded5 up), which no bus restart of a running
// desktop meets.
func TestCatalogClaims(t *testing.T) {
	apps, err := assets.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	display := ""
	for _, app := range apps {
		if app.Verified && app.Display && display == "" {
			display = bustest.StartXvfb(t, 1280, 800).Name
		}
	}
	for _, app := range apps {
		if !app.Verified {
			continue
		}
		t.Run(app.ID, func(t *testing.T) {
			if _, err := os.Stat(app.Exe); err != nil {
				t.Fatalf("%s is not installed (%v): run scripts/ensure-deps test (apt-get install -y --no-install-recommends %s)", app.Exe, err, app.Package)
			}
			if len(app.After) > 0 {
				t.Fatalf("after %q: no check for after names yet: write one before marking the entry verified", app.After)
			}
			home := t.TempDir()
			if app.Desktop != "" {
				// The session's environment: the bus passes it on to
				// the services it starts.
				for k, v := range map[string]string{"HOME": home, "XDG_CONFIG_HOME": home + "/.config",
					"XDG_CACHE_HOME": home + "/.cache", "XDG_DATA_HOME": home + "/.local/share",
					"XDG_RUNTIME_DIR": home, "DISPLAY": display} {
					t.Setenv(k, v)
				}
				c := &claim{t: t, app: app, display: display, home: home}
				c.newBus()
				first := c.start()
				c.waitNames(first)
				c.settle(first)
				c.stop(first)
			}
			for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
				t.Run(signalName(sig), func(t *testing.T) { checkClaim(t, app, sig, display, home) })
			}
		})
	}
}

// checkClaim checks app's claim once, with its bus ended by sig.
func checkClaim(t *testing.T, app assets.CatalogApp, sig syscall.Signal, display, home string) {
	c := &claim{t: t, app: app, display: display, home: home}
	c.newBus()
	first := c.start()
	c.waitNames(first)
	c.settle(first)

	if sig == syscall.SIGKILL {
		c.bus.Kill()
	} else {
		c.bus.Stop()
	}
	died := time.Now()
	switch app.Behaviour {
	case assets.Exits:
		select {
		case <-first.exited:
			t.Logf("%s exited %s after %s of its bus: %s", app.ID, ms(time.Since(died)), signalName(sig), exitStatus(first.err))
		case <-time.After(claimDeadline):
			t.Fatalf("%s still runs %s after %s of its bus: the catalog's claim %q is wrong here", app.ID, claimDeadline, signalName(sig), app.Behaviour)
		}
		c.bus.Start()
		c.connect()
	case assets.Deaf:
		c.bus.Start()
		c.connect()
		c.staysDeaf(first)
		sent := time.Now()
		if !c.stop(first) {
			t.Fatalf("%s still runs %s after SIGTERM: a relaunch would have to kill it\n%s", app.ID, appdb.DefaultStopTimeout, first.output())
		}
		t.Logf("%s lived on without its bus and stayed off the new one for %s; SIGTERM ended it in %s: %s",
			app.ID, deafWindow, ms(time.Since(sent)), exitStatus(first.err))
	default:
		t.Fatalf("no check for behaviour %q yet: write one before marking the entry verified", app.Behaviour)
	}

	// The action: started again on the new bus, it is back.
	var hosts <-chan string
	if app.Tray == assets.TrayHost {
		hosts = c.hostRegistrations()
	}
	started := time.Now()
	again := c.start()
	c.waitNames(again)
	t.Logf("%s started again owns %q within %s", app.ID, app.Names, ms(time.Since(started)))
	switch app.Tray {
	case assets.TrayWatcher:
		c.registersItem()
	case assets.TrayHost:
		// Its host is up, with no watcher on the bus; one comes now, as
		// kded5's does when Plasma starts the shell first.
		host := c.waitHostName(again)
		c.serveWatcher()
		select {
		case h := <-hosts:
			if h != host {
				t.Fatalf("%s registered %s with the watcher, not its host %s", app.ID, h, host)
			}
			t.Logf("%s registered its tray host %s with a watcher that came after it", app.ID, h)
		case <-again.exited:
			t.Fatalf("%s exited: %s\n%s", app.ID, exitStatus(again.err), again.output())
		case <-time.After(claimDeadline):
			t.Fatalf("%s registered no tray host with the watcher that came after it within %s\n%s", app.ID, claimDeadline, again.output())
		}
	}
}

// claim checks one catalog entry's claim.
type claim struct {
	t       *testing.T
	app     assets.CatalogApp
	bus     *bustest.Bus
	display string
	home    string
	conn    *dbus.Conn
	signals chan *dbus.Signal
}

// running is the program started by the test.
type running struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // Wait's, once exited is closed
	out    string
}

func (r *running) output() string { b, _ := os.ReadFile(r.out); return string(b) }

// newBus starts the bus of the claim, with the distribution's
// configuration for a desktop's program, and connects to it.
func (c *claim) newBus() {
	c.t.Helper()
	if c.app.Desktop == "" {
		c.bus = bustest.New(c.t)
	} else {
		c.bus = bustest.New(c.t, bustest.Stock())
		// Before the bus's own cleanup: the services it started live on.
		c.t.Cleanup(c.bus.KillClients)
	}
	c.connect()
}

// stop ends r with SIGTERM, as a relaunch does, and reports whether it
// exited within the default stop timeout.
func (c *claim) stop(r *running) bool {
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
		return true
	case <-time.After(appdb.DefaultStopTimeout):
		return false
	}
}

// waitHostName waits until r owns a tray host's name, and returns it.
func (c *claim) waitHostName(r *running) string {
	c.t.Helper()
	deadline := time.After(claimDeadline)
	for {
		var names []string
		if err := c.call("org.freedesktop.DBus.ListNames").Store(&names); err != nil {
			c.t.Fatal(err)
		}
		for _, n := range names {
			if !strings.HasPrefix(n, "org.kde.StatusNotifierHost-") {
				continue
			}
			var owner string
			if c.call("org.freedesktop.DBus.GetNameOwner", n).Store(&owner) == nil {
				if pid, err := c.pid(owner); err == nil && pid == r.cmd.Process.Pid {
					if slices.Contains(names, watcherName) {
						c.t.Fatalf("%s is on the bus already: no watcher can come after %s's host", watcherName, c.app.ID)
					}
					return n
				}
			}
		}
		select {
		case _, ok := <-c.signals:
			if !ok {
				c.signals = nil // the bus went: the ticker wakes the waits
			}
		case <-r.exited:
			c.t.Fatalf("%s exited: %s\n%s", c.app.ID, exitStatus(r.err), r.output())
		case <-deadline:
			c.t.Fatalf("%s owns no org.kde.StatusNotifierHost-* name within %s\n%s", c.app.ID, claimDeadline, r.output())
		}
	}
}

// connect makes the test's connection to the bus (again after a restart).
func (c *claim) connect() {
	c.t.Helper()
	conn, err := dbus.Connect(c.bus.Address())
	if err != nil {
		c.t.Fatalf("connect to the test bus: %v", err)
	}
	c.t.Cleanup(func() { conn.Close() })
	c.conn, c.signals = conn, make(chan *dbus.Signal, 256)
	conn.Signal(c.signals)
	if err := conn.AddMatchSignal(dbus.WithMatchSender("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged")); err != nil {
		c.t.Fatal(err)
	}
}

// start starts the program on the bus, in its own process group (to end
// the helpers it starts too), with its config and state out of the way.
func (c *claim) start() *running {
	c.t.Helper()
	cmd := exec.Command(c.app.Exe)
	cmd.Env = append(c.bus.Env(), "HOME="+c.home, "XDG_CONFIG_HOME="+c.home+"/.config",
		"XDG_CACHE_HOME="+c.home+"/.cache", "XDG_DATA_HOME="+c.home+"/.local/share", "XDG_RUNTIME_DIR="+c.home)
	if c.app.Display {
		// Xvfb has no OpenGL: Qt Quick renders in software.
		cmd.Env = append(cmd.Env, "DISPLAY="+c.display, "QT_QPA_PLATFORM=xcb", "LIBGL_ALWAYS_SOFTWARE=1", "QT_QUICK_BACKEND=software")
	}
	// What the desktop's session sets (startplasma, startlxqt).
	switch c.app.Desktop {
	case assets.KDE:
		cmd.Env = append(cmd.Env, "XDG_CURRENT_DESKTOP=KDE", "KDE_FULL_SESSION=true", "KDE_SESSION_VERSION=5")
	case assets.LXQt:
		cmd.Env = append(cmd.Env, "XDG_CURRENT_DESKTOP=LXQt", "XDG_CONFIG_DIRS=/etc:/etc/xdg:/usr/share")
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	// A file, not a pipe: Wait would also wait for the helpers that
	// inherit a pipe.
	out, err := os.CreateTemp(c.home, "output")
	if err != nil {
		c.t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	r := &running{cmd: cmd, exited: make(chan struct{}), out: out.Name()}
	go func() { r.err = cmd.Wait(); close(r.exited) }()
	c.t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-r.exited
	})
	return r
}

// waitNames waits until r owns every name of the entry.
func (c *claim) waitNames(r *running) {
	c.t.Helper()
	deadline := time.After(claimDeadline)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := c.ownsAll(r.cmd.Process.Pid)
		if err == nil {
			return
		}
		select {
		case _, ok := <-c.signals:
			if !ok {
				c.signals = nil // the bus went: the ticker wakes the waits
			}
		case <-tick.C:
		case <-r.exited:
			c.t.Fatalf("%s exited at start: %s\n%s", c.app.ID, exitStatus(r.err), r.output())
		case <-deadline:
			c.t.Fatalf("%s did not own its names within %s: %v\n%s", c.app.ID, claimDeadline, err, r.output())
		}
	}
}

func (c *claim) ownsAll(pid int) error {
	for _, n := range c.app.Names {
		var owner string
		if err := c.call("org.freedesktop.DBus.GetNameOwner", n).Store(&owner); err != nil {
			return err
		}
		if p, err := c.pid(owner); err != nil || p != pid {
			return fmt.Errorf("%s is owned by pid %d, not by %s (pid %d): %v", n, p, c.app.Exe, pid, err)
		}
	}
	return nil
}

func (c *claim) call(method string, args ...any) *dbus.Call {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.conn.BusObject().CallWithContext(ctx, method, 0, args...)
}

func (c *claim) pid(unique string) (int, error) {
	var pid uint32
	err := c.call("org.freedesktop.DBus.GetConnectionUnixProcessID", unique).Store(&pid)
	return int(pid), err
}

// settle waits until the program has finished starting: it and the
// processes it started used at most one clock tick (10 ms) of CPU over the
// last half second. Bus restarts hit desktops that are up, not programs
// that still load their modules.
func (c *claim) settle(r *running) {
	c.t.Helper()
	deadline := time.After(claimDeadline)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var used []uint64 // CPU ticks, one sample per tick
	for {
		used = append(used, treeTicks(r.cmd.Process.Pid))
		if k := len(used); k > 5 && used[k-1]-used[k-6] <= 1 {
			return
		}
		select {
		case <-tick.C:
		case <-r.exited:
			c.t.Fatalf("%s exited at start: %s\n%s", c.app.ID, exitStatus(r.err), r.output())
		case <-deadline:
			c.t.Fatalf("%s still busy %s after it started", c.app.ID, claimDeadline)
		}
	}
}

// treeTicks returns the CPU time, in clock ticks, that a process and its
// running descendants have used, and that of their children that exited.
func treeTicks(pid int) uint64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command name, which ends with the last ')':
	// utime, stime, cutime and cstime are the 14th to 17th of the line.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	var n uint64
	for i := 11; i <= 14 && i < len(f); i++ {
		v, _ := strconv.ParseUint(f[i], 10, 64)
		n += v
	}
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))
		for c := range strings.FieldsSeq(string(children)) {
			if child, err := strconv.Atoi(c); err == nil {
				n += treeTicks(child)
			}
		}
	}
	return n
}

// staysDeaf watches the restarted bus for deafWindow: the program lives
// on and neither connects nor owns any of its names. The window is the
// claim's measure, not a wait for something to happen.
func (c *claim) staysDeaf(r *running) {
	c.t.Helper()
	end := time.After(deafWindow)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		var names []string
		if err := c.call("org.freedesktop.DBus.ListNames").Store(&names); err != nil {
			c.t.Fatal(err)
		}
		for _, n := range names {
			if pid, err := c.pid(n); err == nil && pid == r.cmd.Process.Pid {
				c.t.Fatalf("%s came back to the new bus by itself (%s): the catalog's claim %q is wrong here", c.app.ID, n, c.app.Behaviour)
			}
		}
		select {
		case <-r.exited:
			c.t.Fatalf("%s exited after its bus went (%s): the catalog's claim %q is wrong here", c.app.ID, exitStatus(r.err), c.app.Behaviour)
		case <-end:
			return
		case <-tick.C:
		case _, ok := <-c.signals:
			if !ok {
				c.signals = nil // the bus went: the ticker wakes the waits
			}
		}
	}
}

// registersItem registers a tray icon (the test's own connection) with the
// watcher the program serves, and checks that the watcher lists it.
func (c *claim) registersItem() {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	w := c.conn.Object(watcherName, "/StatusNotifierWatcher")
	if err := w.CallWithContext(ctx, watcherName+".RegisterStatusNotifierItem", 0, "/StatusNotifierItem").Err; err != nil {
		c.t.Fatalf("register a tray icon with %s's watcher: %v", c.app.ID, err)
	}
	deadline := time.After(claimDeadline)
	for {
		v, err := w.GetProperty(watcherName + ".RegisteredStatusNotifierItems")
		items, _ := v.Value().([]string)
		if err == nil && slices.ContainsFunc(items, func(it string) bool { return strings.HasPrefix(it, c.conn.Names()[0]) }) {
			c.t.Logf("%s's watcher lists the tray icon registered with it: %q", c.app.ID, items)
			return
		}
		select {
		case <-deadline:
			c.t.Fatalf("%s's watcher does not list the tray icon registered with it: %q, %v", c.app.ID, items, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// standInWatcher is the smallest StatusNotifierWatcher: it takes the
// hosts' registrations.
type standInWatcher struct{ hosts chan string }

func (w standInWatcher) RegisterStatusNotifierHost(service string) *dbus.Error {
	select {
	case w.hosts <- service:
	default:
	}
	return nil
}

func (w standInWatcher) RegisterStatusNotifierItem(string) *dbus.Error { return nil }

// hostRegistrations returns the channel on which serveWatcher's watcher
// reports host registrations; call it before the host starts.
func (c *claim) hostRegistrations() <-chan string {
	hosts := make(chan string, 8)
	if err := c.conn.Export(standInWatcher{hosts}, "/StatusNotifierWatcher", watcherName); err != nil {
		c.t.Fatal(err)
	}
	if _, err := prop.Export(c.conn, "/StatusNotifierWatcher", prop.Map{watcherName: {
		"RegisteredStatusNotifierItems":  {Value: []string{}},
		"IsStatusNotifierHostRegistered": {Value: true},
		"ProtocolVersion":                {Value: int32(0)},
	}}); err != nil {
		c.t.Fatal(err)
	}
	return hosts
}

// serveWatcher makes the test's connection the bus's
// org.kde.StatusNotifierWatcher.
func (c *claim) serveWatcher() {
	c.t.Helper()
	reply, err := c.conn.RequestName(watcherName, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		c.t.Fatalf("own %s: %v, %v", watcherName, reply, err)
	}
}

func signalName(sig syscall.Signal) string {
	if sig == syscall.SIGKILL {
		return "SIGKILL"
	}
	return "SIGTERM"
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

func exitStatus(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed by " + ws.Signal().String()
		}
		return ee.String()
	}
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
