package keep

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

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
	slow := dialRaw(t, tk.addr)
	w := writer{}
	w.str("type='signal',interface='org.example.Flood'")
	slow.roundTrip(t, appendMessage(nil, typeMethodCall, 0, 0, &fields{
		path: "/org/freedesktop/DBus", iface: busName, member: "AddMatch", dest: busName, sig: "s",
	}, w.b))

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
	var h header
	deadline := time.Now().Add(waitLimit)
	for got := 0; got < n; {
		if time.Now().After(deadline) {
			t.Fatalf("the slow app got %d of %d signals within %s", got, n, waitLimit)
		}
		msg, _, err := slow.s.next()
		if err != nil {
			t.Fatal(err)
		}
		if msg == nil {
			if err := slow.s.fill(true); err != nil {
				t.Fatalf("after %d signals: %v", got, err)
			}
			continue
		}
		if err := parseHeader(msg, &h); err != nil {
			t.Fatal(err)
		}
		if h.typ != typeSignal || h.member.str(msg) != "Tick" {
			continue
		}
		r := bodyReader(msg, &h, "uay")
		if r == nil {
			t.Fatalf("signal %d: signature %q", got, h.sig.str(msg))
		}
		if i := r.u32(); r.err != nil || int(i) != got {
			t.Fatalf("signal %d came as number %d (%v)", got, i, r.err)
		}
		if len(msg) < size {
			t.Fatalf("signal %d: %d bytes, want more than %d", got, len(msg), size)
		}
		got++
	}
}

// TestFrozenAppAtRestart: an app that stopped reading with the keeper's
// write to it stuck (a frozen app, a full socket) when the bus restarts
// does not keep the other kept apps from coming back.
func TestFrozenAppAtRestart(t *testing.T) {
	bus := bustest.New(t)
	tk := startKeeper(t, bus)
	slow := dialRaw(t, tk.addr)
	w := writer{}
	w.str("type='signal',interface='org.example.Flood'")
	slow.roundTrip(t, appendMessage(nil, typeMethodCall, 0, 0, &fields{
		path: "/org/freedesktop/DBus", iface: busName, member: "AddMatch", dest: busName, sig: "s",
	}, w.b))
	other := connect(t, tk.addr)
	servePinger(t, other, "other")
	requestName(t, other, "org.example.Other", 0)

	sender := connect(t, bus.Address())
	payload := bytes.Repeat([]byte("f"), 64<<10)
	for i := range 64 { // 4 MB: far more than socket buffers hold
		if err := sender.Emit("/org/example/Flood", "org.example.Flood.Tick", uint32(i), payload); err != nil {
			t.Fatalf("emit %d: %v", i, err)
		}
	}
	// The flood has reached the keeper once the bus answers after it.
	if _, _, err := ping(connect(t, bus.Address()), "org.example.Other"); err != nil {
		t.Fatal(err)
	}

	bus.Kill()
	bus.Start()
	direct := connect(t, bus.Address())
	deadline := time.Now().Add(waitLimit)
	for {
		answerer, _, err := ping(direct, "org.example.Other")
		if err == nil && answerer == "other" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("with a frozen kept app, another kept app is not back within %s: %v", waitLimit, err)
		}
	}
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
