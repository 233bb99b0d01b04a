package keep

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"busmedic/relaunch/control"
	"busmedic/watcher/bustest"
)

func TestCallThroughKeeper(t *testing.T) {
	bus := bustest.New(t)
	tk := startKeeper(t, bus)
	app := keptApp(t, tk, "app", "org.example.Kept")
	direct := connect(t, bus.Address())

	answerer, caller, err := ping(direct, "org.example.Kept")
	if err != nil || answerer != "app" || caller != direct.Names()[0] {
		t.Fatalf("direct -> kept: %q %q %v", answerer, caller, err)
	}
	servePinger(t, direct, "direct")
	answerer, caller, err = ping(app, direct.Names()[0])
	if err != nil || answerer != "direct" || caller != app.Names()[0] {
		t.Fatalf("kept -> direct: %q %q %v", answerer, caller, err)
	}
	if owner := nameOwner(t, direct, "org.example.Kept"); owner != app.Names()[0] {
		t.Errorf("the bus says %s owns org.example.Kept, the app is %s", owner, app.Names()[0])
	}
	r := tk.waitReport(t, "the app and its name", func(r control.KeptReport) bool {
		return len(r.Apps) == 1 && slices.Equal(r.Apps[0].Names, []string{"org.example.Kept"})
	})
	a := r.Apps[0]
	if a.PID != os.Getpid() || a.Connections != 1 || !slices.Equal(a.UniqueNames, app.Names()[:1]) || a.Command == "" || a.StartTime == 0 {
		t.Errorf("report: %+v", a)
	}
}

// TestNameKeptThroughRestarts: an app that owns a name through the keeper
// keeps its unique name and its well-known name through a SIGTERM and a
// SIGKILL restart of the bus, and is callable at its name after each.
func TestNameKeptThroughRestarts(t *testing.T) {
	bus := bustest.New(t)
	tk := startKeeper(t, bus)
	app := keptApp(t, tk, "app", "org.example.Kept")
	unique := app.Names()[0]

	for i, stop := range []func(){bus.Stop, bus.Kill} {
		stop()
		bus.Start()
		replays := tk.waitReplay(t)
		if len(replays) != 1 || !slices.Equal(replays[0].Names, []string{"org.example.Kept"}) || len(replays[0].Lost) != 0 ||
			replays[0].BusID == "" || replays[0].Connections != 1 {
			t.Fatalf("restart %d: replays %+v", i, replays)
		}
		direct := connect(t, bus.Address())
		answerer, _, err := ping(direct, "org.example.Kept")
		if err != nil || answerer != "app" {
			t.Fatalf("restart %d: ping the kept app: %q %v", i, answerer, err)
		}
		// The app still sees itself as it did, and the bus driver
		// agrees when asked through the keeper.
		if got := nameOwner(t, app, "org.example.Kept"); got != unique {
			t.Errorf("restart %d: through the keeper, org.example.Kept is owned by %s, want %s", i, got, unique)
		}
		if got := nameOwner(t, app, unique); got != unique {
			t.Errorf("restart %d: GetNameOwner(own name) = %s, want %s", i, got, unique)
		}
		var id string
		if err := app.BusObject().Call("org.freedesktop.DBus.GetId", 0).Store(&id); err != nil || id != replays[0].BusID {
			t.Errorf("restart %d: GetId through the keeper: %q %v, replay says %q", i, id, err, replays[0].BusID)
		}
		r := tk.Report()
		if len(r.Apps) != 1 || r.Apps[0].Restarts != i+1 || !slices.Equal(r.Apps[0].UniqueNames, []string{unique}) ||
			r.Apps[0].LastReplay == nil {
			t.Errorf("restart %d: report %+v", i, r)
		}
	}
}

// TestNoServerDuringOutage: while the bus is away a call gets NoServer at
// once, and a connection that arrives is served when the bus is back.
func TestNoServerDuringOutage(t *testing.T) {
	bus := bustest.New(t)
	tk := startKeeper(t, bus)
	app := connect(t, tk.addr)
	tk.block()
	bus.Stop()
	tk.waitReport(t, "the bus down", func(r control.KeptReport) bool { return !r.Up })

	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	var id string
	err := app.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetId", 0).Store(&id)
	var derr dbus.Error
	if !errors.As(err, &derr) || derr.Name != errNoServer {
		t.Fatalf("call during the outage: %v, want %s", err, errNoServer)
	}

	late := make(chan *dbus.Conn, 1)
	go func() {
		c, err := dbus.Connect(tk.addr)
		if err != nil {
			t.Errorf("connect during the outage: %v", err)
		}
		late <- c
	}()
	// The newcomer is held: it is counted, but has no name yet.
	tk.waitReport(t, "the newcomer held", func(r control.KeptReport) bool {
		return len(r.Apps) == 1 && r.Apps[0].Connections == 2
	})
	bus.Start()
	tk.unblock()
	var c *dbus.Conn
	select {
	case c = <-late:
	case <-time.After(waitLimit):
		t.Fatal("the connection made during the outage was not served after it")
	}
	if c == nil {
		return
	}
	defer c.Close()
	if err := c.BusObject().Call("org.freedesktop.DBus.GetId", 0).Store(&id); err != nil {
		t.Errorf("newcomer's call: %v", err)
	}
	if err := app.BusObject().Call("org.freedesktop.DBus.GetId", 0).Store(&id); err != nil {
		t.Errorf("kept app's call after the outage: %v", err)
	}
}

// TestNameLost: a name someone else took in the gap is reported lost, and
// the app is told with NameLost.
func TestNameLost(t *testing.T) {
	bus := bustest.New(t)
	tk := startKeeper(t, bus)
	app := connect(t, tk.addr)
	requestName(t, app, "org.example.Contested", 0)
	requestName(t, app, "org.example.Mine", 0)
	signals := make(chan *dbus.Signal, 100)
	app.Signal(signals)

	tk.block()
	bus.Restart()
	thief := connect(t, bus.Address())
	requestName(t, thief, "org.example.Contested", dbus.NameFlagDoNotQueue)
	tk.unblock()

	replays := tk.waitReplay(t)
	if len(replays) != 1 || !slices.Equal(replays[0].Lost, []string{"org.example.Contested"}) ||
		!slices.Equal(replays[0].Names, []string{"org.example.Mine"}) {
		t.Fatalf("replays: %+v", replays)
	}
	s := nextSignal(t, signals, "NameLost", func(s *dbus.Signal) bool { return s.Name == "org.freedesktop.DBus.NameLost" })
	if len(s.Body) != 1 || s.Body[0] != "org.example.Contested" {
		t.Errorf("NameLost %v", s.Body)
	}
	r := tk.Report()
	if len(r.Apps) != 1 || !slices.Equal(r.Apps[0].Lost, []string{"org.example.Contested"}) ||
		!slices.Equal(r.Apps[0].Names, []string{"org.example.Mine"}) {
		t.Errorf("report: %+v", r.Apps)
	}
}

// TestWatcherSeesVanishThenAppear: an app that watches a name another
// (not kept) app owns is told, after the restart, that the old owner
// vanished and then that the new one appeared.
func TestWatcherSeesVanishThenAppear(t *testing.T) {
	bus := bustest.New(t)
	tk := startKeeper(t, bus)
	svc := connect(t, bus.Address())
	requestName(t, svc, "org.example.Svc", 0)
	oldOwner := svc.Names()[0]

	watcher := connect(t, tk.addr)
	signals := make(chan *dbus.Signal, 100)
	watcher.Signal(signals)
	if err := watcher.AddMatchSignal(dbus.WithMatchSender("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged"),
		dbus.WithMatchArg(0, "org.example.Svc")); err != nil {
		t.Fatal(err)
	}
	if got := nameOwner(t, watcher, "org.example.Svc"); got != oldOwner {
		t.Fatalf("owner %s, want %s", got, oldOwner)
	}

	tk.block()
	bus.Restart()
	// The keeper's own connection had the first name on the old bus;
	// one connection in its place makes svc2 the old owner's namesake.
	connect(t, bus.Address())
	svc2 := connect(t, bus.Address())
	requestName(t, svc2, "org.example.Svc", 0)
	tk.unblock()
	tk.waitReplay(t)
	// The new owner came before the keeper and got the name the old
	// one had (:1.0): the watcher sees it under an alias.
	newOwner := nameOwner(t, watcher, "org.example.Svc")
	if newOwner == oldOwner || svc2.Names()[0] != oldOwner {
		t.Errorf("new owner %s (on the bus %s), old %s", newOwner, svc2.Names()[0], oldOwner)
	}

	isNOC := func(s *dbus.Signal) bool { return s.Name == "org.freedesktop.DBus.NameOwnerChanged" }
	vanish := nextSignal(t, signals, "the vanish", isNOC)
	appear := nextSignal(t, signals, "the appear", isNOC)
	if !slices.Equal(vanish.Body, []any{"org.example.Svc", oldOwner, ""}) {
		t.Errorf("first NameOwnerChanged %v, want the vanish of %s", vanish.Body, oldOwner)
	}
	if !slices.Equal(appear.Body, []any{"org.example.Svc", "", newOwner}) {
		t.Errorf("second NameOwnerChanged %v, want the appear of %s", appear.Body, newOwner)
	}
}

// TestKeptPeersByUniqueName: two kept apps that talk by unique name go on
// doing so across a restart, each seeing the other's old name.
func TestKeptPeersByUniqueName(t *testing.T) {
	bus := bustest.New(t)
	tk := startKeeper(t, bus)
	a := connect(t, tk.addr)
	b := connect(t, tk.addr)
	servePinger(t, a, "a")
	servePinger(t, b, "b")
	an, bn := a.Names()[0], b.Names()[0]
	check := func(when string) {
		t.Helper()
		if answerer, caller, err := ping(b, an); err != nil || answerer != "a" || caller != bn {
			t.Errorf("%s: b -> a by %s: %q %q %v", when, an, answerer, caller, err)
		}
		if answerer, caller, err := ping(a, bn); err != nil || answerer != "b" || caller != an {
			t.Errorf("%s: a -> b by %s: %q %q %v", when, bn, answerer, caller, err)
		}
	}
	check("before")
	// A newcomer on the new bus must not get a name the kept apps know.
	tk.block()
	bus.Restart()
	tk.unblock()
	tk.waitReplay(t)
	check("after")
	direct := connect(t, bus.Address())
	if n := direct.Names()[0]; n == an || n == bn {
		t.Errorf("a newcomer got the name %s of a kept app", n)
	}
	// On the new bus the old names are nobody's; through the keeper they
	// are still the kept apps'.
	var owner string
	if err := direct.BusObject().Call("org.freedesktop.DBus.GetNameOwner", 0, an).Store(&owner); err == nil {
		t.Errorf("on the new bus %s is owned by %s; want nobody", an, owner)
	}
	if owner := nameOwner(t, b, an); owner != an {
		t.Errorf("through the keeper %s is owned by %s", an, owner)
	}
	var names []string
	if err := b.BusObject().Call("org.freedesktop.DBus.ListNames", 0).Store(&names); err != nil ||
		!slices.Contains(names, an) || !slices.Contains(names, bn) {
		t.Errorf("ListNames through the keeper: %v %v; want %s and %s in it", names, err, an, bn)
	}
}

// TestAddMatchMultiplicity: AddMatch twice is replayed twice, so one
// RemoveMatch after the restart still leaves the signal coming.
func TestAddMatchMultiplicity(t *testing.T) {
	bus := bustest.New(t)
	tk := startKeeper(t, bus)
	app := connect(t, tk.addr)
	signals := make(chan *dbus.Signal, 100)
	app.Signal(signals)
	const rule = "type='signal',interface='org.example.Test',member='Tick'"
	const sentinel = "type='signal',interface='org.example.Test',member='Sentinel'"
	for _, r := range []string{rule, rule, sentinel} {
		if err := app.BusObject().Call("org.freedesktop.DBus.AddMatch", 0, r).Err; err != nil {
			t.Fatal(err)
		}
	}
	tk.block()
	bus.Restart()
	tk.unblock()
	replays := tk.waitReplay(t)
	if replays[0].Matches != 3 {
		t.Errorf("replayed %d matches, want 3", replays[0].Matches)
	}
	emitter := connect(t, bus.Address())
	emit := func(member string) {
		if err := emitter.Emit("/org/example/Test", "org.example.Test."+member); err != nil {
			t.Fatal(err)
		}
	}
	// Signals from one sender arrive in order: Tick before Sentinel
	// means Tick was delivered, none means it was not.
	gotTick := func() bool {
		emit("Tick")
		emit("Sentinel")
		tick := false
		nextSignal(t, signals, "the sentinel", func(s *dbus.Signal) bool {
			tick = tick || s.Name == "org.example.Test.Tick"
			return s.Name == "org.example.Test.Sentinel"
		})
		return tick
	}
	if !gotTick() {
		t.Fatal("no Tick after the restart")
	}
	if err := app.BusObject().Call("org.freedesktop.DBus.RemoveMatch", 0, rule).Err; err != nil {
		t.Fatal(err)
	}
	if !gotTick() {
		t.Error("no Tick after one RemoveMatch of two AddMatch")
	}
	if err := app.BusObject().Call("org.freedesktop.DBus.RemoveMatch", 0, rule).Err; err != nil {
		t.Fatal(err)
	}
	if gotTick() {
		t.Error("Tick after two RemoveMatch of two AddMatch")
	}
}

// TestFDPassing: fds go through the keeper both ways, to a kept app and
// back from it, before and after a restart.
func TestFDPassing(t *testing.T) {
	bus := bustest.New(t)
	tk := startKeeper(t, bus)
	svc := connect(t, tk.addr)
	client := connect(t, tk.addr)
	if !svc.SupportsUnixFDs() || !client.SupportsUnixFDs() {
		t.Fatal("the keeper did not agree to pass fds")
	}
	servePinger(t, svc, "svc")
	requestName(t, svc, "org.example.FDs", 0)
	check := func(when string) {
		t.Helper()
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		w.WriteString("hello " + when)
		w.Close()
		defer r.Close()
		var got string
		obj := client.Object("org.example.FDs", pingPath)
		if err := obj.Call(pingIface+".Read", 0, dbus.UnixFD(r.Fd())).Store(&got); err != nil || got != "hello "+when {
			t.Errorf("%s: Read(fd) = %q, %v", when, got, err)
		}
		var fd dbus.UnixFD
		if err := obj.Call(pingIface+".Open", 0).Store(&fd); err != nil {
			t.Fatalf("%s: Open: %v", when, err)
		}
		f := os.NewFile(uintptr(fd), "returned")
		defer f.Close()
		b := make([]byte, 64)
		n, _ := f.Read(b)
		if string(b[:n]) != "from svc" {
			t.Errorf("%s: the returned fd holds %q", when, b[:n])
		}
	}
	check("before")
	bus.Restart()
	tk.waitReplay(t)
	check("after")
}

// TestTools: libdbus (dbus-send) and GDBus (gdbus) clients call through
// the keeper, before and after a restart.
func TestTools(t *testing.T) {
	bus := bustest.New(t)
	tk := startKeeper(t, bus)
	keptApp(t, tk, "app", "org.example.Tools")
	run := func(when string, name string, args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), `"app"`) && !strings.Contains(string(out), `'app'`) {
			t.Errorf("%s: %s: %v\n%s", when, name, err, out)
		}
	}
	for _, when := range []string{"before", "after"} {
		run(when, "dbus-send", "--bus="+tk.addr, "--print-reply", "--dest=org.example.Tools",
			string(pingPath), pingIface+".Ping")
		run(when, "gdbus", "call", "--address", tk.addr, "--dest", "org.example.Tools",
			"--object-path", string(pingPath), "--method", pingIface+".Ping")
		if when == "before" {
			bus.Restart()
			tk.waitReplay(t)
		}
	}
}

// TestNamesPastKept: after a restart the bus hands out no unique name an
// app knows from before, however far the old bus had counted.
func TestNamesPastKept(t *testing.T) {
	bus := bustest.New(t)
	tk := startKeeper(t, bus)
	for range 300 {
		c, err := dbus.Connect(bus.Address())
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	app := connect(t, tk.addr)
	servePinger(t, app, "app")
	unique := app.Names()[0]
	n, ok := uniqueNumber(unique)
	if !ok || n < 300 {
		t.Fatalf("kept app is %s", unique)
	}
	bus.Kill()
	bus.Start()
	tk.waitReplay(t)
	direct := connect(t, bus.Address())
	if m, ok := uniqueNumber(direct.Names()[0]); !ok || m <= n {
		t.Errorf("newcomer %s, kept app %s", direct.Names()[0], unique)
	}
	if answerer, caller, err := ping(direct, unique); err == nil {
		t.Errorf("the kept app's old name %s reaches %q on the new bus (caller %s)", unique, answerer, caller)
	}
	if answerer, _, err := ping(app, unique); err != nil || answerer != "app" {
		t.Errorf("the kept app calling itself by its name: %q %v", answerer, err)
	}
}

// TestMonitorKept: a monitor through the keeper is a monitor again after
// the restart.
func TestMonitorKept(t *testing.T) {
	bus := bustest.New(t)
	tk := startKeeper(t, bus)
	mon := connect(t, tk.addr)
	signals := make(chan *dbus.Signal, 100)
	mon.Signal(signals)
	rules := []string{"type='signal',interface='org.example.Mon'"}
	if err := mon.BusObject().Call("org.freedesktop.DBus.Monitoring.BecomeMonitor", 0, rules, uint32(0)).Err; err != nil {
		t.Fatal(err)
	}
	isTick := func(s *dbus.Signal) bool { return s.Name == "org.example.Mon.Tick" }
	emitter := connect(t, bus.Address())
	if err := emitter.Emit("/org/example/Mon", "org.example.Mon.Tick"); err != nil {
		t.Fatal(err)
	}
	nextSignal(t, signals, "a Tick before the restart", isTick)
	bus.Restart()
	replays := tk.waitReplay(t)
	if !replays[0].Monitor {
		t.Errorf("replay %+v without the monitor", replays[0])
	}
	emitter = connect(t, bus.Address())
	if err := emitter.Emit("/org/example/Mon", "org.example.Mon.Tick"); err != nil {
		t.Fatal(err)
	}
	nextSignal(t, signals, "a Tick after the restart", isTick)
}

// TestBigMessages: messages far bigger than the keeper's buffers go
// through whole, both ways.
func TestBigMessages(t *testing.T) {
	bus := bustest.New(t)
	tk := startKeeper(t, bus)
	svc := connect(t, tk.addr)
	if err := svc.ExportMethodTable(map[string]any{
		"Echo": func(b []byte) ([]byte, *dbus.Error) { return b, nil },
	}, "/org/example/Big", "org.example.Big"); err != nil {
		t.Fatal(err)
	}
	client := connect(t, tk.addr)
	for _, size := range []int{300 << 10, 1 << 20, 100} {
		in := make([]byte, size)
		for i := range in {
			in[i] = byte(i * 7)
		}
		var out []byte
		if err := client.Object(svc.Names()[0], "/org/example/Big").Call("org.example.Big.Echo", 0, in).Store(&out); err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		if !bytes.Equal(in, out) {
			t.Errorf("%d bytes came back as %d different ones", size, len(out))
		}
	}
}

// TestHeldWhenDialFails: an app that arrives while the keeper believes the
// bus is up, but cannot reach it, is held and served once it can.
func TestHeldWhenDialFails(t *testing.T) {
	bus := bustest.New(t)
	tk := startKeeper(t, bus)
	tk.block()
	late := connectLater(t, tk.addr)
	tk.waitReport(t, "the bus down", func(r control.KeptReport) bool { return !r.Up && len(r.Apps) == 1 })
	tk.unblock()
	select {
	case c := <-late:
		if c != nil {
			c.Close()
		}
	case <-time.After(waitLimit):
		t.Fatal("the app held while the bus could not be reached was not served after")
	}
}

// TestRestartsInARow: the bus killed again and again, also in the middle
// of a replay; the kept app comes out of it with its names.
func TestRestartsInARow(t *testing.T) {
	bus := bustest.New(t)
	tk := startKeeper(t, bus)
	app := keptApp(t, tk, "app", "org.example.Kept")
	unique := app.Names()[0]
	for range 10 {
		bus.Kill()
		bus.Start()
	}
	waitAnswer(t, connect(t, bus.Address()), "org.example.Kept", "app", "the kept app")
	if got := nameOwner(t, app, "org.example.Kept"); got != unique {
		t.Errorf("through the keeper the name is owned by %s, want %s", got, unique)
	}
	r := tk.Report()
	if len(r.Apps) != 1 || r.Apps[0].Restarts < 1 || len(r.Apps[0].Lost) != 0 {
		t.Errorf("report %+v", r.Apps)
	}
}

// TestNewcomerWithAKeptName: an app that comes to the new bus before the
// keeper replays may get a name a kept app knows (here the kept app's
// own); the kept app sees it under another name, and both work.
func TestNewcomerWithAKeptName(t *testing.T) {
	bus := bustest.New(t)
	tk := startKeeper(t, bus)
	app := keptApp(t, tk, "app", "org.example.Kept")
	unique := app.Names()[0]
	tk.block()
	bus.Restart()
	connect(t, bus.Address()) // in the place of the keeper's own connection
	early := connect(t, bus.Address())
	servePinger(t, early, "early")
	if early.Names()[0] != unique {
		t.Fatalf("the newcomer is %s, not the kept app's %s: the test needs them equal", early.Names()[0], unique)
	}
	tk.unblock()
	tk.waitReplay(t)

	answerer, alias, err := ping(early, "org.example.Kept")
	if err != nil || answerer != "app" || alias == unique || !strings.HasPrefix(alias, ":busmedic.") {
		t.Fatalf("newcomer -> kept app: %q, seen as %q, %v", answerer, alias, err)
	}
	// The newcomer talks to the bus itself: it sees the kept app by its
	// name on this bus.
	if answerer, caller, err := ping(app, alias); err != nil || answerer != "early" || caller != nameOwner(t, early, "org.example.Kept") {
		t.Errorf("kept app -> newcomer by %s: %q %q %v", alias, answerer, caller, err)
	}
	if answerer, _, err := ping(app, unique); err != nil || answerer != "app" {
		t.Errorf("kept app -> itself by %s: %q %v", unique, answerer, err)
	}
}

// TestQueuedNameStaysQueued: an app that owned a name (queueing allowed)
// finds it taken on the new bus: its replayed RequestName is answered 2
// (in the queue). It is told NameLost, as an owner replaced by someone
// else is, but stays in the queue: when the name is released it gets
// NameAcquired from the bus and owns the name, and a restart after that
// replays the name again. The queue entry used to be forgotten, so the
// name was never asked for again after the next restart.
func TestQueuedNameStaysQueued(t *testing.T) {
	bus := bustest.New(t)
	tk := startKeeper(t, bus)
	app := connect(t, tk.addr)
	servePinger(t, app, "app")
	signals := make(chan *dbus.Signal, 100)
	app.Signal(signals)
	requestName(t, app, "org.example.Queued", 0)

	tk.block()
	bus.Restart()
	thief := connect(t, bus.Address())
	requestName(t, thief, "org.example.Queued", dbus.NameFlagDoNotQueue)
	tk.unblock()
	replays := tk.waitReplay(t)
	if len(replays) != 1 || !slices.Equal(replays[0].Lost, []string{"org.example.Queued"}) {
		t.Fatalf("replays: %+v", replays)
	}
	nextSignal(t, signals, "NameLost", func(s *dbus.Signal) bool {
		return s.Name == "org.freedesktop.DBus.NameLost" && len(s.Body) == 1 && s.Body[0] == "org.example.Queued"
	})
	var queued []string
	if err := thief.BusObject().Call("org.freedesktop.DBus.ListQueuedOwners", 0, "org.example.Queued").Store(&queued); err != nil {
		t.Fatal(err)
	}
	if len(queued) != 2 || queued[0] != thief.Names()[0] {
		t.Fatalf("queue on the bus: %v; want the thief, then the kept app", queued)
	}

	// The thief lets go: the app is the owner, and is told so by the bus.
	var released uint32
	if err := thief.BusObject().Call("org.freedesktop.DBus.ReleaseName", 0, "org.example.Queued").Store(&released); err != nil || released != 1 {
		t.Fatalf("ReleaseName: %d %v", released, err)
	}
	acquired := nextSignal(t, signals, "NameAcquired", func(s *dbus.Signal) bool {
		return s.Name == "org.freedesktop.DBus.NameAcquired" && len(s.Body) == 1 && s.Body[0] == "org.example.Queued"
	})
	if acquired.Sender != "org.freedesktop.DBus" {
		t.Errorf("NameAcquired from %q, want the bus", acquired.Sender)
	}
	tk.waitReport(t, "the app owning the name", func(r control.KeptReport) bool {
		return len(r.Apps) == 1 && slices.Equal(r.Apps[0].Names, []string{"org.example.Queued"})
	})

	// The next restart replays it.
	bus.Restart()
	replays = tk.waitReplay(t)
	if len(replays) != 1 || !slices.Equal(replays[0].Names, []string{"org.example.Queued"}) || len(replays[0].Lost) != 0 {
		t.Fatalf("second restart: replays %+v; want the name replayed", replays)
	}
	direct := connect(t, bus.Address())
	if answerer, _, err := ping(direct, "org.example.Queued"); err != nil || answerer != "app" {
		t.Fatalf("after the second restart, the name reaches %q (%v), want the kept app", answerer, err)
	}
}

// TestQueuedNameReplayedQueued: an app waiting in a name's queue (not
// the owner) is put back in the queue after a restart, and gets the name
// when its owner lets go.
func TestQueuedNameReplayedQueued(t *testing.T) {
	bus := bustest.New(t)
	tk := startKeeper(t, bus)
	owner := connect(t, bus.Address())
	requestName(t, owner, "org.example.Waited", 0)
	app := connect(t, tk.addr)
	servePinger(t, app, "app")
	signals := make(chan *dbus.Signal, 100)
	app.Signal(signals)
	if reply, err := app.RequestName("org.example.Waited", 0); err != nil || reply != dbus.RequestNameReplyInQueue {
		t.Fatalf("RequestName: %v %v, want in the queue", reply, err)
	}

	// Killed: a bus stopped in order would first say goodbye for the
	// owner, and hand the name to the app.
	tk.block()
	bus.Kill()
	bus.Start()
	owner2 := connect(t, bus.Address())
	requestName(t, owner2, "org.example.Waited", 0)
	tk.unblock()
	if replays := tk.waitReplay(t); len(replays) != 1 || len(replays[0].Lost) != 0 || len(replays[0].Names) != 0 {
		t.Fatalf("replays: %+v", replays)
	}
	var released uint32
	if err := owner2.BusObject().Call("org.freedesktop.DBus.ReleaseName", 0, "org.example.Waited").Store(&released); err != nil || released != 1 {
		t.Fatalf("ReleaseName: %d %v", released, err)
	}
	nextSignal(t, signals, "NameAcquired", func(s *dbus.Signal) bool {
		return s.Name == "org.freedesktop.DBus.NameAcquired" && len(s.Body) == 1 && s.Body[0] == "org.example.Waited"
	})
	if answerer, _, err := ping(owner2, "org.example.Waited"); err != nil || answerer != "app" {
		t.Fatalf("the name reaches %q (%v), want the kept app", answerer, err)
	}
}

// TestReplacedOwnerStaysQueued: an owner replaced on the bus (it allowed
// replacement, another asked to replace it) is told NameLost and waits in
// the name's queue; after a restart it is in the queue again.
func TestReplacedOwnerStaysQueued(t *testing.T) {
	bus := bustest.New(t)
	tk := startKeeper(t, bus)
	app := connect(t, tk.addr)
	requestName(t, app, "org.example.Replaced", dbus.NameFlagAllowReplacement)
	other := connect(t, tk.addr)
	servePinger(t, other, "other")
	requestName(t, other, "org.example.Replaced", dbus.NameFlagReplaceExisting)

	bus.Kill()
	bus.Start()
	tk.waitReplay(t)
	direct := connect(t, bus.Address())
	var queued []string
	if err := direct.BusObject().Call("org.freedesktop.DBus.ListQueuedOwners", 0, "org.example.Replaced").Store(&queued); err != nil {
		t.Fatal(err)
	}
	if len(queued) != 2 {
		t.Fatalf("queue of the name on the new bus: %v; want the owner and the replaced app", queued)
	}
}

// TestUpWithoutApps: with no app connected the keeper still follows the
// bus: it reports the bus down when it goes and up when it is back. The
// report used to say up until an app connected.
func TestUpWithoutApps(t *testing.T) {
	bus := bustest.New(t)
	tk := startKeeper(t, bus)
	for _, stop := range []func(){bus.Stop, bus.Kill} {
		stop()
		tk.waitReport(t, "the bus down", func(r control.KeptReport) bool { return !r.Up })
		if r := tk.Report(); r.Up || len(r.Apps) != 0 {
			t.Fatalf("with the bus stopped: %+v", r)
		}
		bus.Start()
		tk.waitReport(t, "the bus up again", func(r control.KeptReport) bool { return r.Up })
	}
	// And an app connecting now is served at once.
	app := connect(t, tk.addr)
	var id string
	if err := app.BusObject().Call("org.freedesktop.DBus.GetId", 0).Store(&id); err != nil {
		t.Fatal(err)
	}
}

// A bus that goes away again while the keeper's replay is making the kept
// connections live, after one has gone live, leaves no connection live on
// a closed upstream: once the bus is back, every kept app is replayed and
// answers.
func TestBusGoneDuringReplay(t *testing.T) {
	bus := bustest.New(t)
	var once sync.Once
	armed := make(chan struct{})
	tk := startKeeperWith(t, bus, func(k *Keeper) {
		k.wentLive = func() {
			select {
			case <-armed:
				once.Do(bus.Kill)
			default:
			}
		}
	})
	names := []string{"org.example.First", "org.example.Second"}
	for _, name := range names {
		keptApp(t, tk, name, name)
	}

	close(armed)
	bus.Stop()
	bus.Start() // the replay kills it after the first app went live
	<-bus.Exited()
	bus.Start()
	// Both connections are this process's: one app in the report.
	tk.waitReport(t, "the app replayed onto the bus a second time", func(r control.KeptReport) bool {
		return r.Up && len(r.Apps) == 1 && r.Apps[0].Connections == 2 && r.Apps[0].Restarts >= 2
	})
	direct := connect(t, bus.Address())
	for _, name := range names {
		if answerer, _, err := ping(direct, name); err != nil || answerer != name {
			t.Errorf("ping %s after the bus came back: %q %v", name, answerer, err)
		}
	}
}

// A new connection whose dial of the bus fails while the bus is there
// (a dial that timed out, a full backlog) is tried again on its own: the
// connections already kept are not taken down and replayed for it.
func TestFailedDialOfANewcomer(t *testing.T) {
	bus := bustest.New(t)
	tk := startKeeper(t, bus)
	keptApp(t, tk, "kept", "org.example.Kept")

	tk.failDials(1)
	keptApp(t, tk, "newcomer", "org.example.Newcomer")

	direct := connect(t, bus.Address())
	for name, want := range map[string]string{"org.example.Kept": "kept", "org.example.Newcomer": "newcomer"} {
		if answerer, _, err := ping(direct, name); err != nil || answerer != want {
			t.Errorf("ping %s: %q %v", name, answerer, err)
		}
	}
	if r := tk.Report(); !r.Up || len(r.Apps) != 1 || r.Apps[0].LastReplay != nil || r.Apps[0].Connections != 2 {
		t.Errorf("report %+v, want both connections kept and none replayed", r)
	}
}
