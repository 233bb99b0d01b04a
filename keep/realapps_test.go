package keep_test

// The tests with real apps: each app is kept through a SIGTERM and
// a SIGKILL restart of a real dbus-daemon and must be the same process,
// answering, after each. TestWithoutKeeper shows first what the same apps
// do without a keeper: that is why the keeper exists.

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"busmedic/relaunch/control"
	"busmedic/watcher/bustest"
)

// Names the fixtures own and watch.
const (
	notificationsName = "org.freedesktop.Notifications"
	serviceName       = "org.example.Service"
	directName        = "org.example.Direct"
	echoName          = "org.example.Echo"
	qtName            = "org.example.Qt"
)

// startGDBus starts testdata/gdbus_app.py with session bus addr.
func startGDBus(t testing.TB, addr string, args ...string) *proc {
	t.Helper()
	needPython(t, "gi", "python3-gi")
	p := startProc(t, appEnv(addr), python, append([]string{"testdata/gdbus_app.py"}, args...)...)
	p.Expect("ready")
	return p
}

// startQt starts testdata/qt_app.py with session bus addr.
func startQt(t testing.TB, addr string, own string, watch ...string) *proc {
	t.Helper()
	needPython(t, "PyQt5.QtDBus", "python3-pyqt5")
	args := []string{"testdata/qt_app.py", "--own", own}
	for _, w := range watch {
		args = append(args, "--watch", w)
	}
	// offscreen: a QCoreApplication needs no display, but Qt still reads
	// the platform plugin's name from the environment.
	p := startProc(t, appEnv(addr, "QT_QPA_PLATFORM=offscreen"), python, args...)
	p.Expect("ready")
	return p
}

// startEcho starts dbus-test-tool echo (libdbus) owning name, and waits
// until the real bus has it.
func startEcho(t testing.TB, rb *realBus, addr, name string) *proc {
	t.Helper()
	bin := need(t, "dbus-test-tool", "dbus-tests")
	p := startProc(t, appEnv(addr), bin, "echo", "--name="+name)
	rb.WaitOwner(name)
	return p
}

// startDunst starts the real dunst on display.
func startDunst(t testing.TB, addr string, display *bustest.Display) *proc {
	t.Helper()
	bin := need(t, "dunst", "dunst")
	return startProc(t, appEnv(addr, "DISPLAY="+display.Name), bin)
}

// callEcho calls any method of dbus-test-tool echo, which answers every
// call with an empty reply.
func callEcho(rb *realBus, name string) error {
	return rb.Call(name, "Ping", nil)
}

// checkKept fails the test unless the app kept is still the process it
// was, and the real bus sees the path's process (the keeper) as the
// owner of name.
func checkKept(t testing.TB, rb *realBus, app *proc, name string, keeperPID int) string {
	t.Helper()
	if !app.Alive() {
		t.Fatalf("kept app died: %s", app.status())
	}
	owner := rb.WaitOwner(name)
	if keeperPID != 0 {
		if got := rb.PeerPID(owner); got != keeperPID {
			t.Errorf("the owner %s of %s is pid %d on the real bus, want the keeper's %d", owner, name, got, keeperPID)
		}
	}
	return owner
}

// throughRestarts runs check, then restarts the bus with SIGTERM and with
// SIGKILL, and after each waits for the keeper to have replayed every app
// and runs check again.
func throughRestarts(t testing.TB, bus *bustest.Bus, k *keeper, check func(when string)) {
	t.Helper()
	check("before a restart")
	for i, sig := range restartSignals {
		restart(t, bus, sig)
		k.WaitRestarts(t, i+1)
		check("after " + sig.String())
	}
}

// checkWatcher fails the test unless a watcher's view of name comes back
// to owner after a restart: the keeper keeps a kept peer's unique name.
// Whether it sees the name vanish and appear again on the way depends on
// which app the keeper replays first (it tells a watcher nothing when the
// owner is back before the watcher's replay asks), so the events are
// checked for order, not number: appear, then vanish and appear in turn,
// never two of a kind in a row (GDBus's runtime check) and appeared last.
func checkWatcher(t testing.TB, p *proc, name, owner string) {
	t.Helper()
	want := "owner " + name + " " + owner
	var got string
	if !poll(func() bool { got = p.Ask("owner "+name, "owner "+name); return got == want }) {
		t.Fatalf("the watcher says %q, want %q: %s", got, want, p.status())
	}
	checkAlternates(t, p, "appeared "+name, "vanished "+name)
}

// checkAlternates fails the test unless the lines of p that start with up
// and down alternate, up first and last.
func checkAlternates(t testing.TB, p *proc, up, down string) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	next, last := up, ""
	for _, l := range p.seen {
		if !strings.HasPrefix(l, up) && !strings.HasPrefix(l, down) {
			continue
		}
		if !strings.HasPrefix(l, next) {
			t.Errorf("%s said %q where %q was due:\n  %s", p.name, l, next, strings.Join(p.seen, "\n  "))
			return
		}
		last = next
		if next == up {
			next = down
		} else {
			next = up
		}
	}
	if last != up {
		t.Errorf("%s's last word on the watched name is not %q:\n  %s", p.name, up, strings.Join(p.seen, "\n  "))
	}
}

// checkStderr fails the test if a GLib or Qt program warned: the keeper
// must not make an app see what a bus would never send.
func checkStderr(t testing.TB, apps ...*proc) {
	t.Helper()
	for _, a := range apps {
		for _, bad := range []string{"runtime check failed", "CRITICAL", "WARNING", "Warning"} {
			if strings.Contains(a.Stderr(), bad) {
				t.Errorf("%s wrote %q on stderr:\n%s", a.name, bad, a.Stderr())
			}
		}
	}
}

// TestWithoutKeeper is the baseline: the same apps connected straight to
// the bus die with it (libdbus, GDBus) or live on deaf (QtDBus).
func TestWithoutKeeper(t *testing.T) {
	bus := bustest.New(t, bustest.Stock())
	t.Cleanup(bus.KillClients)
	display := bustest.StartXvfb(t, 640, 480)
	rb := newRealBus(t, bus)
	addr := bus.Address()

	echo := startEcho(t, rb, addr, echoName)
	dunst := startDunst(t, addr, display)
	rb.WaitOwner(notificationsName)
	service := startGDBus(t, addr, "--own", serviceName)
	service.Expect("owned " + serviceName)
	qt := startQt(t, addr, qtName, serviceName)

	restart(t, bus, syscall.SIGKILL)
	for _, app := range []*proc{echo, dunst, service} {
		app.WaitExit()
		t.Logf("without a keeper %s ended: %s", app.name, app.cmd.ProcessState)
	}
	// Qt says nothing when its bus goes; ask until it knows.
	if !poll(func() bool { return qt.Ask("status", "connected") == "connected false" }) {
		t.Fatalf("QtDBus still says it is connected %s after its bus went away: %s", waitLimit, qt.status())
	}
	if !qt.Alive() {
		t.Fatalf("the Qt app died; it was expected to live on deaf: %s", qt.status())
	}
	t.Logf("without a keeper the QtDBus app lives on deaf (pid %d)", qt.PID())
}

// TestKeepDunst: dunst, kept, serves notifications after each restart,
// as the same process.
func TestKeepDunst(t *testing.T) {
	bus := bustest.New(t, bustest.Stock())
	// A notification server the bus started on demand (dunst's own
	// service file) would answer in the kept one's place: none may run.
	t.Cleanup(bus.KillClients)
	display := bustest.StartXvfb(t, 640, 480)
	k := startKeeper(t, bus)
	rb := newRealBus(t, bus)
	notifySend := need(t, "notify-send", "libnotify-bin")
	dunst := startDunst(t, k.addr, display)
	throughRestarts(t, bus, k, func(when string) {
		t.Helper()
		owner := checkKept(t, rb, dunst, notificationsName, os.Getpid())
		// notify-send on the real bus, as any app of the session.
		cmd := exec.Command(notifySend, "--print-id", "--expire-time=1000", "kept "+when)
		cmd.Env = bus.Env()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: notify-send: %v: %s\ndunst: %s", when, err, out, dunst.status())
		}
		var name, vendor, version, spec string
		call := rb.Conn().Object(owner, "/org/freedesktop/Notifications").
			Call(notificationsName+".GetServerInformation", 0)
		if err := call.Store(&name, &vendor, &version, &spec); err != nil {
			t.Fatalf("%s: GetServerInformation: %v", when, err)
		}
		if name != "dunst" {
			t.Errorf("%s: the notification server is %q, want dunst", when, name)
		}
		if others := bus.Clients(); len(others) != 0 {
			t.Errorf("%s: the bus started programs of its own (pids %v): the kept dunst did not answer", when, others)
		}
		t.Logf("%s: dunst pid %d answered notification %s", when, dunst.PID(), strings.TrimSpace(string(out)))
	})
	checkStderr(t, dunst)
}

// TestKeepGDBus: a GDBus service and a GDBus client that watches its name
// and calls it, both kept. After each restart the client's watcher has the
// service's name back, with the same owner, and its next call works. The
// client also watches a service that is not kept, which dies with the bus
// and is started again on the new one: the client sees it vanish, then
// appear with its new owner, and can call it. GLib warns of nothing.
func TestKeepGDBus(t *testing.T) {
	bus := bustest.New(t, bustest.Stock())
	k := startKeeper(t, bus)
	rb := newRealBus(t, bus)
	service := startGDBus(t, k.addr, "--own", serviceName)
	service.Expect("owned " + serviceName)
	startDirect := func() (*proc, string) {
		t.Helper()
		p := startGDBus(t, bus.Address(), "--own", directName)
		p.Expect("owned " + directName)
		return p, rb.WaitOwner(directName)
	}
	direct, directOwner := startDirect()
	client := startGDBus(t, k.addr, "--watch", serviceName, "--watch", directName, "--subscribe")
	owner := strings.Fields(client.Expect("appeared " + serviceName))[2]
	client.Expect("appeared " + directName + " " + directOwner)
	throughRestarts(t, bus, k, func(when string) {
		t.Helper()
		if when != "before a restart" {
			direct.WaitExit()
			oldOwner := directOwner
			direct, directOwner = startDirect()
			client.Expect("vanished " + directName)
			client.Expect("appeared " + directName + " " + directOwner)
			if directOwner == oldOwner || directOwner == owner {
				t.Errorf("%s: the new bus gave the new %s the unique name %s, which a kept app knows (old %s, kept %s)",
					when, directName, directOwner, oldOwner, owner)
			}
		}
		arg := strings.ReplaceAll(when, " ", "-")
		if got := client.Ask("call "+serviceName+" "+arg, "reply", "error"); got != "reply pong:"+arg {
			t.Errorf("%s: the client's call to the kept service: %q", when, got)
		}
		if got := client.Ask("call "+directName+" "+arg, "reply", "error"); got != "reply pong:"+arg {
			t.Errorf("%s: the client's call to the service that is not kept: %q", when, got)
		}
		checkWatcher(t, client, serviceName, owner)
		// Its subscription (an AddMatch) was replayed: a signal from a
		// program straight on the bus reaches it.
		if err := rb.Conn().Emit("/org/example/Keep", "org.example.Keep.Tick", arg); err != nil {
			t.Fatal(err)
		}
		client.Expect("tick " + arg)
		checkKept(t, rb, service, serviceName, os.Getpid())
		var pid uint32
		if err := rb.Call(serviceName, "Pid", &pid); err != nil || int(pid) != service.PID() {
			t.Errorf("%s: %s answered from pid %d (%v), want %d", when, serviceName, pid, err, service.PID())
		}
	})
	checkAlternates(t, client, "appeared "+directName, "vanished "+directName)
	checkStderr(t, service, client)
}

// TestKeepQt: a QtDBus program that owns a name and watches two others
// with a QDBusServiceWatcher, kept: it answers after each restart, its
// watcher has the kept service's name back, and it follows a service that
// is not kept (dbus-test-tool echo, which dies with the bus and is started
// again on the new one) through its vanish and return.
func TestKeepQt(t *testing.T) {
	bus := bustest.New(t, bustest.Stock())
	k := startKeeper(t, bus)
	rb := newRealBus(t, bus)
	qt := startQt(t, k.addr, qtName, echoName, directName)
	// The watched services come after the watcher, which only reports
	// changes.
	echo := startEcho(t, rb, k.addr, echoName)
	qt.Expect("registered " + echoName)
	direct := startEcho(t, rb, bus.Address(), directName)
	qt.Expect("registered " + directName)
	throughRestarts(t, bus, k, func(when string) {
		t.Helper()
		if when != "before a restart" {
			direct.WaitExit()
			direct = startEcho(t, rb, bus.Address(), directName)
			qt.Expect("unregistered " + directName)
			qt.Expect("registered " + directName)
		}
		checkKept(t, rb, qt, qtName, os.Getpid())
		arg := strings.ReplaceAll(when, " ", "-")
		var pong string
		if err := rb.Call(qtName, "Ping", &pong, arg); err != nil || pong != "pong:"+arg {
			t.Errorf("%s: Ping to the Qt app: %q, %v", when, pong, err)
		}
		var pid uint32
		if err := rb.Call(qtName, "Pid", &pid); err != nil || int(pid) != qt.PID() {
			t.Errorf("%s: %s answered from pid %d (%v), want %d", when, qtName, pid, err, qt.PID())
		}
		if got := qt.Ask("status", "connected"); got != "connected true" {
			t.Errorf("%s: the Qt app says %q", when, got)
		}
		for _, name := range []string{echoName, directName} {
			if !poll(func() bool { return qt.Ask("watched "+name, "watched") == "watched "+name+" yes" }) {
				t.Errorf("%s: the Qt app's watcher does not have %s back: %s", when, name, qt.status())
			}
			checkAlternates(t, qt, "registered "+name, "unregistered "+name)
		}
		checkKept(t, rb, echo, echoName, os.Getpid())
	})
	checkStderr(t, qt)
}

// TestKeepEcho: dbus-test-tool echo (libdbus) answers a call after each
// restart, the same process.
func TestKeepEcho(t *testing.T) {
	bus := bustest.New(t, bustest.Stock())
	k := startKeeper(t, bus)
	rb := newRealBus(t, bus)
	echo := startEcho(t, rb, k.addr, echoName)
	throughRestarts(t, bus, k, func(when string) {
		t.Helper()
		checkKept(t, rb, echo, echoName, os.Getpid())
		if err := callEcho(rb, echoName); err != nil {
			t.Errorf("%s: call to dbus-test-tool echo: %v", when, err)
		}
	})
}

// TestKeepOwnsName: an app that owns a name keeps it: the name resolves on
// the real bus to the keeper's connection for the app, and calls to it
// reach the same process. The app is never told it lost the name.
func TestKeepOwnsName(t *testing.T) {
	bus := bustest.New(t, bustest.Stock())
	k := startKeeper(t, bus)
	rb := newRealBus(t, bus)
	service := startGDBus(t, k.addr, "--own", serviceName)
	service.Expect("owned " + serviceName)
	throughRestarts(t, bus, k, func(when string) {
		t.Helper()
		checkKept(t, rb, service, serviceName, os.Getpid())
		var pid uint32
		if err := rb.Call(serviceName, "Pid", &pid); err != nil || int(pid) != service.PID() {
			t.Errorf("%s: %s answered from pid %d (%v), want %d", when, serviceName, pid, err, service.PID())
		}
	})
	// A "lost" line would come before the answer to a command: ask one
	// to have read everything it said so far.
	service.Ask("owner "+serviceName, "owner")
	service.mu.Lock()
	defer service.mu.Unlock()
	for _, l := range service.seen {
		if strings.HasPrefix(l, "lost") {
			t.Errorf("the kept app was told %q", l)
		}
	}
}

// TestKeepFdPassing: a kept client passes a file descriptor to a kept
// service, which reads it, and the service passes one back, before and
// after each restart.
func TestKeepFdPassing(t *testing.T) {
	bus := bustest.New(t, bustest.Stock())
	k := startKeeper(t, bus)
	service := startGDBus(t, k.addr, "--own", serviceName)
	service.Expect("owned " + serviceName)
	client := startGDBus(t, k.addr)
	throughRestarts(t, bus, k, func(when string) {
		t.Helper()
		text := "to-service-" + strings.ReplaceAll(when, " ", "-")
		if got := client.Ask("sendfd "+serviceName+" "+text, "readfd", "error"); got != "readfd "+text {
			t.Errorf("%s: client to service: %q", when, got)
		}
		text = "to-client-" + strings.ReplaceAll(when, " ", "-")
		if got := client.Ask("getfd "+serviceName+" "+text, "gotfd", "error"); got != "gotfd "+text {
			t.Errorf("%s: service to client: %q", when, got)
		}
	})
	checkStderr(t, service, client)
}

// TestKeepOutage: while the bus is down a kept GDBus app's calls fail at
// once with an error from the keeper (never GDBus's own timeout: a hang),
// an app that starts meanwhile is held, not refused, and once the bus is
// back both work: the held one owns its name, the other's calls reach it.
func TestKeepOutage(t *testing.T) {
	bus := bustest.New(t, bustest.Stock())
	k := startKeeper(t, bus)
	rb := newRealBus(t, bus)
	client := startGDBus(t, k.addr)
	for i, sig := range restartSignals {
		t.Run(sig.String(), func(t *testing.T) {
			switch sig {
			case syscall.SIGTERM:
				bus.Stop()
			case syscall.SIGKILL:
				bus.Kill()
			}
			// The keeper learns of the outage from its upstream
			// connections' end; a call just before that is lost with
			// them, so the call that counts is the one after the keeper
			// says the bus is down.
			k.WaitReport(t, "the bus down", func(r control.KeptReport) bool { return !r.Up })
			got := client.Ask("call "+echoName+" outage", "reply", "error")
			if !strings.HasPrefix(got, "error") || strings.Contains(got, "Timeout") {
				t.Errorf("a call during the outage: %q, want an error at once (NoServer)", got)
			}
			t.Logf("a call during the outage: %q", got)
			// A new app, started while the bus is down: held.
			bin := need(t, "dbus-test-tool", "dbus-tests")
			name := echoName + "." + strings.ToUpper(sig.String()[:1]) + sig.String()[1:]
			echo := startProc(t, appEnv(k.addr), bin, "echo", "--name="+name)
			bus.Start()
			// The test's own connection to the new bus waits for the
			// keeper's replay: see TestKeepPeerWithAKeptName for why.
			k.WaitReport(t, "the client replayed", func(r control.KeptReport) bool {
				for _, a := range r.Apps {
					if a.PID == client.PID() {
						return r.Up && a.Restarts == i+1
					}
				}
				return false
			})
			rb.WaitOwner(name)
			if err := callEcho(rb, name); err != nil {
				t.Errorf("the app started during the outage does not answer: %v", err)
			}
			if got := client.Ask("poke "+name, "answered", "error"); got != "answered" {
				t.Errorf("after the outage the kept client's call to the held app: %q", got)
			}
			if !echo.Alive() {
				t.Errorf("the app started during the outage died: %s", echo.status())
			}
		})
	}
	checkStderr(t, client)
}

// TestKeepPeerWithAKeptName: every new bus numbers its connections from
// :1.0 again, so a program that connects to the new bus before the keeper
// has replayed can get the unique name a kept app keeps as its own. The
// kept app's old name must still be the kept app's for the other kept
// apps, and the newcomer must still be reachable under its own: a kept
// service answers the newcomer's call. (Against wt-keep 7612252 it is
// not: a monitor on the new bus sees the newcomer :1.0 call the kept echo
// and echo's reply go to ":1.11", the kept GDBus app's connection, whose
// old name is :1.0.)
func TestKeepPeerWithAKeptName(t *testing.T) {
	bus := bustest.New(t, bustest.Stock())
	k := startKeeper(t, bus)
	rb := newRealBus(t, bus)
	// The kept apps' names: the GDBus app is the first connection to the
	// bus (:1.0), echo a later one.
	app := startGDBus(t, k.addr, "--own", serviceName)
	app.Expect("owned " + serviceName)
	echo := startEcho(t, rb, k.addr, echoName)
	k.Hold()
	restart(t, bus, syscall.SIGKILL)
	// The newcomer: the first connection to the new bus, before the
	// keeper's.
	newcomer, err := dbus.Connect(bus.Address())
	if err != nil {
		t.Fatal(err)
	}
	defer newcomer.Close()
	k.Release()
	k.WaitRestarts(t, 1)
	t.Logf("the newcomer is %s on the new bus; the kept apps are %+v", newcomer.Names()[0], k.Report().Apps)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := newcomer.Object(echoName, "/").CallWithContext(ctx, "org.example.Bench.Ping", 0).Err; err != nil {
		t.Errorf("the newcomer %s calls the kept echo: %v (the reply goes to the kept app whose old name it has)",
			newcomer.Names()[0], err)
	}
	var pong string
	if err := newcomer.Object(serviceName, "/org/example/Keep").CallWithContext(ctx, "org.example.Keep.Ping", 0, "x").Store(&pong); err != nil {
		t.Errorf("the newcomer %s calls the kept GDBus app: %v", newcomer.Names()[0], err)
	}
	// Kept apps still reach each other.
	if got := app.Ask("poke "+echoName, "answered", "error"); got != "answered" {
		t.Errorf("the kept GDBus app's call to the kept echo: %q", got)
	}
	if !echo.Alive() || !app.Alive() {
		t.Errorf("a kept app died: %s\n%s", echo.status(), app.status())
	}
}

// TestKeepNameLost: when another program takes a kept app's name while
// the bus is down, the replayed RequestName cannot get it back: the kept
// GDBus app is told (its name-lost callback runs, without a GLib warning),
// the keeper reports the name lost, and the app lives on.
func TestKeepNameLost(t *testing.T) {
	bus := bustest.New(t, bustest.Stock())
	k := startKeeper(t, bus)
	rb := newRealBus(t, bus)
	service := startGDBus(t, k.addr, "--own", serviceName)
	service.Expect("owned " + serviceName)
	k.Hold()
	restart(t, bus, syscall.SIGKILL)
	// The other program comes first: as a second copy the bus started
	// on demand would.
	other := startEcho(t, rb, bus.Address(), serviceName)
	k.Release()
	k.WaitRestarts(t, 1)
	service.Expect("lost " + serviceName)
	r := k.WaitReport(t, serviceName+" lost", func(r control.KeptReport) bool {
		for _, a := range r.Apps {
			if a.PID == service.PID() {
				return slices.Contains(a.Lost, serviceName)
			}
		}
		return false
	})
	t.Logf("report: %+v", r.Apps)
	if owner := rb.WaitOwner(serviceName); rb.PeerPID(owner) != other.PID() {
		t.Errorf("%s is owned by %s (pid %d), want the other program (pid %d)", serviceName, owner, rb.PeerPID(owner), other.PID())
	}
	if !service.Alive() {
		t.Fatalf("the app that lost its name died: %s", service.status())
	}
	checkStderr(t, service)
}
