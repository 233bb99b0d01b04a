package keep

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"busmedic/relaunch/control"
	"busmedic/watcher/bustest"
)

// TestAppThatDoesNotRead: a kept app that stops reading while the bus
// sends it megabytes holds up its own connection only (the poller leaves
// the write to a goroutine and stops reading the bus for that app): other
// kept apps' calls are answered meanwhile, and once the app reads again
// it gets every message, in order.
func TestAppThatDoesNotRead(t *testing.T) {
	bus := bustest.New(t)
	tk := startKeeper(t, bus)
	slow := floodListener(t, tk.addr)

	const n, size = 64, 64 << 10 // 4 MB: far more than socket buffers hold
	sender := connect(t, bus.Address())
	payload := bytes.Repeat([]byte("f"), size)
	for i := range n {
		if err := sender.Emit("/org/example/Flood", "org.example.Flood.Tick", uint32(i), payload); err != nil {
			t.Fatalf("emit %d: %v", i, err)
		}
	}

	// The keeper is stuck writing to the slow app; another app is not.
	servePinger(t, sender, "direct")
	other := connect(t, tk.addr)
	for range 20 {
		start := time.Now()
		if answerer, _, err := ping(other, sender.Names()[0]); err != nil || answerer != "direct" {
			t.Fatalf("another kept app's call while one does not read: %q %v", answerer, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("another kept app's call took %s while one does not read", d)
		}
	}

	// The slow app reads again: every signal, in order.
	deadline := time.Now().Add(waitLimit)
	for got := 0; got < n; got++ {
		i, length := nextTick(t, slow.s, deadline, fmt.Sprintf("the slow app, after %d of %d signals", got, n))
		if int(i) != got {
			t.Fatalf("signal %d came as number %d", got, i)
		}
		if length < size {
			t.Fatalf("signal %d: %d bytes, want more than %d", got, length, size)
		}
	}
}

// nextTick reads the app's socket s until a "Tick" signal, skipping other
// messages, and returns its number and its length; it fails the test, as
// what, at deadline.
func nextTick(t *testing.T, s *sock, deadline time.Time, what string) (uint32, int) {
	t.Helper()
	var h header
	for {
		if time.Now().After(deadline) {
			t.Fatalf("%s: no more signals by the deadline", what)
		}
		msg, _, err := s.next()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if msg == nil {
			if err := s.fill(true); err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			continue
		}
		if err := parseHeader(msg, &h); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if h.typ != typeSignal || h.member.str(msg) != "Tick" {
			continue
		}
		r := bodyReader(msg, &h, "uay")
		if r == nil {
			t.Fatalf("%s: signature %q", what, h.sig.str(msg))
		}
		i := r.u32()
		if r.err != nil {
			t.Fatalf("%s: %v", what, r.err)
		}
		return i, len(msg)
	}
}

// TestFrozenAppAtRestart: an app that stopped reading with the keeper's
// write to it stuck (a frozen app, a full socket) when the bus restarts
// does not keep the other kept apps from coming back.
func TestFrozenAppAtRestart(t *testing.T) {
	bus := bustest.New(t)
	tk := startKeeper(t, bus)
	floodListener(t, tk.addr) // never reads: a frozen app
	other := connect(t, tk.addr)
	servePinger(t, other, "other")
	requestName(t, other, "org.example.Other", 0)

	flood(t, bus, 64) // 4 MB: far more than socket buffers hold

	bus.Kill()
	bus.Start()
	waitAnswer(t, connect(t, bus.Address()), "org.example.Other", "other", "with a frozen kept app, another kept app")
}

// TestPollerSurvivesEpollWaitErrors: epoll_wait(2) failing with EINTR,
// EAGAIN, or an error that says the epoll set itself is broken (here it
// really is: the set was closed under the poller) must not end the
// keeper, nor its forwarding: the poller retries, rebuilds its set with
// every kept socket and goes on. It used to panic, which dropped every
// kept app's connection.
func TestPollerSurvivesEpollWaitErrors(t *testing.T) {
	bus := bustest.New(t)
	var (
		mu     sync.Mutex
		inject []error // failures to return, one per call, first first
		failed = make(chan struct{})
	)
	tk := startKeeperWith(t, bus, func(k *Keeper) {
		k.epollWait = func(epfd int, events []unix.EpollEvent, msec int) (int, error) {
			mu.Lock()
			var err error
			if len(inject) > 0 {
				err, inject = inject[0], inject[1:]
				if len(inject) == 0 {
					defer close(failed)
				}
			}
			mu.Unlock()
			if err == unix.EBADF {
				unix.Close(epfd) // broken for real: a rebuild is needed
			}
			if err != nil {
				return 0, err
			}
			return unix.EpollWait(epfd, events, msec)
		}
	})
	app := connect(t, tk.addr)
	servePinger(t, app, "app")
	requestName(t, app, "org.example.Polled", 0)
	direct := connect(t, bus.Address())
	if answerer, _, err := ping(direct, "org.example.Polled"); err != nil || answerer != "app" {
		t.Fatalf("before: %q %v", answerer, err)
	}

	mu.Lock()
	inject = []error{unix.EINTR, unix.EAGAIN, unix.EINVAL, unix.EBADF}
	mu.Unlock()
	// The poller waits in epoll_wait now; a message makes it return and
	// call again, into the failures.
	done := make(chan error, 1)
	go func() {
		_, _, err := ping(direct, "org.example.Polled")
		done <- err
	}()
	select {
	case <-failed:
	case <-time.After(waitLimit):
		t.Fatal("the poller did not wait again within the wait limit")
	}
	if err := <-done; err != nil {
		t.Fatalf("the call during the failures: %v", err)
	}
	for i := range 5 {
		if answerer, _, err := ping(direct, "org.example.Polled"); err != nil || answerer != "app" {
			t.Fatalf("after the failures, call %d: %q %v", i, answerer, err)
		}
		var id string
		if err := app.BusObject().Call("org.freedesktop.DBus.GetId", 0).Store(&id); err != nil {
			t.Fatalf("after the failures, the app's call %d: %v", i, err)
		}
	}
	// A new kept connection joins the rebuilt set too.
	late := connect(t, tk.addr)
	servePinger(t, late, "late")
	if answerer, _, err := ping(direct, late.Names()[0]); err != nil || answerer != "late" {
		t.Fatalf("a connection made after the rebuild: %q %v", answerer, err)
	}
}

// TestFrozenAppHoldsNoLock: a frozen app (not reading, the keeper's
// write to it stuck) through a restart must hold up nothing but its own
// connection. After the restart the bus sends it more; the keeper must
// not wait for the stuck write while holding the connection's lock: a
// later markDown (here: an app that arrives while the bus cannot be
// reached) takes every connection's lock, and waiting there stopped the
// reconnect loop, so that no kept app came back and new ones were held
// for ever. Like a real bus with a client that does not read, the keeper
// keeps the frozen app's messages (the bus queues the rest) and hands
// them over, in order, when it reads again.
func TestFrozenAppHoldsNoLock(t *testing.T) {
	bus := bustest.New(t)
	tk := startKeeper(t, bus)
	frozen := floodListener(t, tk.addr)
	// The Keeper's lock: tk.mu is the test's gate.
	tk.Keeper.mu.Lock()
	frozenConn := tk.conns[0]
	tk.Keeper.mu.Unlock()
	other := connect(t, tk.addr)
	servePinger(t, other, "other")
	requestName(t, other, "org.example.Other", 0)

	const n = 64 // 4 MB: far more than socket buffers hold
	flood(t, bus, n)

	bus.Kill()
	bus.Start()
	tk.waitReport(t, "both apps kept through the restart", func(r control.KeptReport) bool {
		return r.Up && len(r.Apps) == 1 && r.Apps[0].Restarts == 1 && r.Apps[0].Connections == 2
	})
	// The new bus sends the frozen app one more: the keeper reads it and,
	// as the app's socket is still full, stops reading the app's new
	// upstream until it can be written.
	sender := connect(t, bus.Address())
	if err := sender.Emit("/org/example/Flood", "org.example.Flood.Tick", uint32(n), []byte("after")); err != nil {
		t.Fatal(err)
	}
	pausedUp := func() bool {
		p := tk.poll
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, it := range p.items {
			if it.c == frozenConn && it.bus && it.paused {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(waitLimit)
	for tick := time.NewTicker(5 * time.Millisecond); !pausedUp(); <-tick.C {
		if time.Now().After(deadline) {
			t.Fatal("the keeper did not take up the frozen app's message from the new bus")
		}
	}

	// An app arrives while the keeper cannot reach the bus: its first
	// connection fails, and the keeper marks the bus down.
	tk.block()
	late := connectLater(t, tk.addr)
	// markDown has run once the keeper holds the bus down. (Not from a
	// report: Report would wait for the lock this test is about.)
	isDown := func() bool {
		tk.Keeper.mu.Lock()
		defer tk.Keeper.mu.Unlock()
		return !tk.up
	}
	deadline = time.Now().Add(waitLimit)
	for tick := time.NewTicker(5 * time.Millisecond); !isDown(); <-tick.C {
		if time.Now().After(deadline) {
			t.Fatal("the keeper did not mark the bus down for the app it could not connect")
		}
	}
	tk.unblock()
	select {
	case c := <-late:
		if c == nil {
			return
		}
		defer c.Close()
		var id string
		if err := c.BusObject().Call("org.freedesktop.DBus.GetId", 0).Store(&id); err != nil {
			t.Fatalf("the late app's call: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatalf("with a frozen app, an app that came while the bus was unreachable was not served within %s", waitLimit)
	}
	reported := make(chan control.KeptReport, 1)
	go func() { reported <- tk.Report() }()
	select {
	case <-reported:
	case <-time.After(waitLimit):
		t.Fatal("Report hangs on the frozen app's connection")
	}
	direct := connect(t, bus.Address())
	if answerer, _, err := ping(direct, "org.example.Other"); err != nil || answerer != "other" {
		t.Fatalf("the other kept app after the frozen one held up a restart: %q %v", answerer, err)
	}

	// The frozen app thaws: it is still connected and gets the signals
	// the keeper had read from the old bus, in order, then the new
	// bus's. (Those the old bus still held for it died with it, as they
	// would have for an app straight on the bus.)
	deadline = time.Now().Add(waitLimit)
	for got := 0; got <= n; {
		i, _ := nextTick(t, frozen.s, deadline, fmt.Sprintf("the thawed app, after %d of %d signals", got, n))
		if int(i) < got || got == 0 && i != 0 {
			t.Fatalf("after signal %d came number %d: out of order", got-1, i)
		}
		got = int(i) + 1
	}
}

// flood emits n "Tick" signals of 64 kB, numbered from 0, on bus, and
// returns once the bus has passed them on: it answers a call to
// org.example.Other, which the test serves, after them.
func flood(t *testing.T, bus *bustest.Bus, n int) {
	t.Helper()
	payload := bytes.Repeat([]byte("f"), 64<<10)
	sender := connect(t, bus.Address())
	for i := range n {
		if err := sender.Emit("/org/example/Flood", "org.example.Flood.Tick", uint32(i), payload); err != nil {
			t.Fatalf("emit %d: %v", i, err)
		}
	}
	if _, _, err := ping(connect(t, bus.Address()), "org.example.Other"); err != nil {
		t.Fatal(err)
	}
}
