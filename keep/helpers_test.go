package keep

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"busmedic/relaunch/control"
	"busmedic/watcher/bustest"
)

// waitLimit bounds every wait of these tests: a test that hangs says why.
const waitLimit = 20 * time.Second

// testKeeper is a Keeper serving in the background for one test.
type testKeeper struct {
	*Keeper
	addr    string // the address apps connect to
	reports chan control.KeptReport
	// gate, while closed, keeps the keeper from reaching the bus.
	mu   sync.Mutex
	shut bool
	// fails is how many of the next dials fail, the bus being there.
	fails int
}

// startKeeper serves a Keeper of bus for the test, stopped at its end.
func startKeeper(t *testing.T, bus *bustest.Bus) *testKeeper {
	t.Helper()
	return startKeeperWith(t, bus, nil)
}

// startKeeperWith is startKeeper with setup run on the Keeper before it
// serves (to set its test hooks).
func startKeeperWith(t *testing.T, bus *bustest.Bus, setup func(*Keeper)) *testKeeper {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keep.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	tk := &testKeeper{addr: "unix:path=" + path, reports: make(chan control.KeptReport, 1000)}
	logger := slog.New(slog.DiscardHandler)
	if testing.Verbose() && os.Getenv("KEEP_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	tk.Keeper = New(Config{
		Bus: "session",
		Address: func() (string, error) {
			tk.mu.Lock()
			defer tk.mu.Unlock()
			if tk.shut {
				return "", errors.New("test: the bus is closed to the keeper")
			}
			if tk.fails > 0 {
				tk.fails--
				return "", errors.New("test: this dial fails")
			}
			return bus.Address(), nil
		},
		Logger: logger,
		Report: func(r control.KeptReport) {
			select {
			case tk.reports <- r:
			default:
			}
		},
	})
	if setup != nil {
		setup(tk.Keeper)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tk.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(waitLimit):
			t.Errorf("Serve did not return within %s of its context ending", waitLimit)
		}
	})
	tk.waitReport(t, "the bus up", func(r control.KeptReport) bool { return r.Up })
	return tk
}

// block keeps the keeper from reaching the bus until unblock.
func (tk *testKeeper) block() { tk.mu.Lock(); tk.shut = true; tk.mu.Unlock() }

func (tk *testKeeper) unblock() { tk.mu.Lock(); tk.shut = false; tk.mu.Unlock() }

// failDials makes the keeper's next n dials of the bus fail, the bus
// being there all along.
func (tk *testKeeper) failDials(n int) { tk.mu.Lock(); tk.fails = n; tk.mu.Unlock() }

// waitReport waits for a report for which ok holds.
func (tk *testKeeper) waitReport(t *testing.T, what string, ok func(control.KeptReport) bool) control.KeptReport {
	t.Helper()
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	for {
		select {
		case r := <-tk.reports:
			if ok(r) {
				return r
			}
		case <-timer.C:
			t.Fatalf("no report with %s within %s; now: %+v", what, waitLimit, tk.Report())
		}
	}
}

// waitReplay waits for the report after a replay and returns its replays.
func (tk *testKeeper) waitReplay(t *testing.T) []control.Replay {
	t.Helper()
	return tk.waitReport(t, "replays", func(r control.KeptReport) bool { return len(r.Replays) > 0 }).Replays
}

// connect opens a godbus connection to addr (the keeper's or the bus's),
// closed at the end of the test.
func connect(t *testing.T, addr string) *dbus.Conn {
	t.Helper()
	c, err := dbus.Connect(addr)
	if err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// connectLater connects to addr in the background, as an app that comes
// while the keeper cannot answer yet: the connection, nil if it failed
// (the test then fails), comes on the channel once made.
func connectLater(t *testing.T, addr string) <-chan *dbus.Conn {
	late := make(chan *dbus.Conn, 1)
	go func() {
		c, err := dbus.Connect(addr)
		if err != nil {
			t.Errorf("connect: %v", err)
		}
		late <- c
	}()
	return late
}

// keptApp connects an app through the keeper that answers Ping as who
// and owns name.
func keptApp(t *testing.T, tk *testKeeper, who, name string) *dbus.Conn {
	t.Helper()
	app := connect(t, tk.addr)
	servePinger(t, app, who)
	requestName(t, app, name, 0)
	return app
}

// requestName makes c own name.
func requestName(t *testing.T, c *dbus.Conn, name string, flags dbus.RequestNameFlags) {
	t.Helper()
	reply, err := c.RequestName(name, flags)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("RequestName %s: %v, %v", name, reply, err)
	}
}

// pinger is an object kept apps export: Ping says who answers and who
// asked.
type pinger struct {
	name string
}

func (p *pinger) Ping(sender dbus.Sender) (string, string, *dbus.Error) {
	return p.name, string(sender), nil
}

// Read reads what the fd it is given holds.
func (p *pinger) Read(fd dbus.UnixFD) (string, *dbus.Error) {
	f := os.NewFile(uintptr(fd), "passed")
	defer f.Close()
	b := make([]byte, 64)
	n, err := f.Read(b)
	if err != nil {
		return "", dbus.MakeFailedError(err)
	}
	return string(b[:n]), nil
}

// Open returns the read end of a pipe that holds "from "+name.
func (p *pinger) Open() (dbus.UnixFD, *dbus.Error) {
	r, w, err := os.Pipe()
	if err != nil {
		return 0, dbus.MakeFailedError(err)
	}
	w.WriteString("from " + p.name)
	w.Close()
	fd, err := dupFD(r)
	r.Close()
	if err != nil {
		return 0, dbus.MakeFailedError(err)
	}
	return dbus.UnixFD(fd), nil
}

const (
	pingPath  = dbus.ObjectPath("/org/example/Pinger")
	pingIface = "org.example.Pinger"
)

// servePinger exports a pinger called name on c.
func servePinger(t *testing.T, c *dbus.Conn, name string) {
	t.Helper()
	if err := c.Export(&pinger{name: name}, pingPath, pingIface); err != nil {
		t.Fatal(err)
	}
}

// ping calls Ping on dest through c and returns who answered and whom
// the answerer saw calling.
func ping(c *dbus.Conn, dest string) (answerer, caller string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	err = c.Object(dest, pingPath).CallWithContext(ctx, pingIface+".Ping", 0).Store(&answerer, &caller)
	return answerer, caller, err
}

// nameOwner asks the bus through c who owns name.
func nameOwner(t *testing.T, c *dbus.Conn, name string) string {
	t.Helper()
	var owner string
	if err := c.BusObject().Call("org.freedesktop.DBus.GetNameOwner", 0, name).Store(&owner); err != nil {
		t.Fatalf("GetNameOwner %s: %v", name, err)
	}
	return owner
}

// nextSignal waits for a signal on ch for which ok holds.
func nextSignal(t *testing.T, ch <-chan *dbus.Signal, what string, ok func(*dbus.Signal) bool) *dbus.Signal {
	t.Helper()
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	for {
		select {
		case s, open := <-ch:
			if !open {
				t.Fatalf("connection closed while waiting for %s", what)
			}
			if ok(s) {
				return s
			}
		case <-timer.C:
			t.Fatalf("no %s within %s", what, waitLimit)
		}
	}
}

func dupFD(f *os.File) (int, error) { return unix.Dup(int(f.Fd())) }

// waitAnswer calls Ping on dest through c until the pinger named want
// answers, failing the test as who after waitLimit: a kept app is back
// at its name on the new bus once its replay is through.
func waitAnswer(t *testing.T, c *dbus.Conn, dest, want, who string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		answerer, _, err := ping(c, dest)
		if err == nil && answerer == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not back at %s within %s: answered by %q, %v", who, dest, waitLimit, answerer, err)
		}
	}
}

// floodListener is a kept app on the keeper at addr that asked for the
// org.example.Flood signals (flood) and reads only when the test says.
func floodListener(t *testing.T, addr string) *rawClient {
	t.Helper()
	c := dialRaw(t, addr)
	w := writer{}
	w.str("type='signal',interface='org.example.Flood'")
	c.roundTrip(t, appendMessage(nil, typeMethodCall, 0, 0, &fields{
		path: "/org/freedesktop/DBus", iface: busName, member: "AddMatch", dest: busName, sig: "s",
	}, w.b))
	return c
}
