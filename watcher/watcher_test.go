package watcher_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"busmedic/watcher"
	"busmedic/watcher/bustest"
)

func TestRestart(t *testing.T) {
	for _, tc := range []struct {
		name   string
		stop   func(*bustest.Bus)
		reason string
	}{
		{"SIGTERM", (*bustest.Bus).Stop, "socket file removed"},
		{"SIGKILL", (*bustest.Bus).Kill, "socket file still there"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bus := bustest.New(t)
			r := watchBus(t, bus)
			up := r.next(watcher.Up)
			if up.ID == "" || up.Address != bus.Address() {
				t.Fatalf("Up = %+v, want an id and address %s", up, bus.Address())
			}
			if up.Peer == nil || up.Peer.PID != bus.PID() || !strings.HasSuffix(up.Peer.Exe, "dbus-daemon") {
				t.Errorf("Up.Peer = %+v, want the daemon, pid %d", up.Peer, bus.PID())
			}
			tc.stop(bus)
			down := r.next(watcher.Down)
			if down.ID != up.ID || !strings.Contains(down.Reason, tc.reason) {
				t.Errorf("Down = id %q reason %q, want id %q and a reason saying %q", down.ID, down.Reason, up.ID, tc.reason)
			}
			bus.Start()
			up2 := r.next(watcher.Up)
			restarted := r.next(watcher.Restarted)
			if up2.ID == up.ID {
				t.Errorf("new bus has the old id %s", up.ID)
			}
			if restarted.OldID != up.ID || restarted.ID != up2.ID || restarted.Downtime <= 0 {
				t.Errorf("Restarted = old %q new %q downtime %v, want old %q new %q and a downtime",
					restarted.OldID, restarted.ID, restarted.Downtime, up.ID, up2.ID)
			}
		})
	}
}

func TestDownForThreeSeconds(t *testing.T) {
	bus := bustest.New(t)
	r := watchBus(t, bus)
	up := r.next(watcher.Up)
	bus.Kill()
	r.next(watcher.Down)
	// While the bus is away (its stale socket file still there) the watcher
	// reports nothing more: one Down, not one per retry; and it does not
	// spin on the stale socket (a busy loop would burn the whole 3 s).
	before := cpuTime(t)
	r.quiet(3 * time.Second)
	if used := cpuTime(t) - before; used > 300*time.Millisecond {
		t.Errorf("the watcher used %v of CPU in 3 s while the bus was down", used)
	}
	bus.Start()
	restarted := r.next(watcher.Restarted)
	if restarted.OldID != up.ID || restarted.Downtime < 3*time.Second {
		t.Errorf("Restarted = %v, want old id %s and downtime of at least 3s", restarted, up.ID)
	}
}

// A watcher that only waits for its bus (the tray's) reports the bus going
// and coming back, and nothing of its peers.
func TestUpDownOnly(t *testing.T) {
	bus := bustest.New(t)
	bus.StartApp("-name", "org.example.Early")
	r := watch(t, bus.Address(), watcher.UpDownOnly())
	r.next(watcher.Up)
	bus.StartApp("-name", "org.example.Late")
	bus.Kill()
	if down := r.next(watcher.Down); len(down.Peers) != 0 {
		t.Errorf("Down with %d peers, want none", len(down.Peers))
	}
	bus.Start()
	r.next(watcher.Restarted)
	for _, e := range r.seen {
		if e.Kind != watcher.Up && e.Kind != watcher.Down && e.Kind != watcher.Restarted {
			t.Errorf("event %v from an up-down-only watcher", e)
		}
	}
	if peers := r.w.Peers(); len(peers) != 0 {
		t.Errorf("Peers() = %v, want none", peers)
	}
}

func TestPeers(t *testing.T) {
	bus := bustest.New(t)
	early := bus.StartApp("-name", "org.example.Early", "-name", "org.example.Early2")
	r := watchBus(t, bus)
	r.next(watcher.Up)

	// A peer found by the inventory on connect.
	joined := r.nextMatching(watcher.PeerJoined, func(e watcher.Event) bool { return e.Peer.PID == early.PID() })
	checkPeer(t, *joined.Peer, early, "org.example.Early", "org.example.Early2")

	// A peer that arrives later: it joins, then takes its name.
	late := bus.StartApp("-name", "org.example.Late")
	r.nextMatching(watcher.PeerJoined, func(e watcher.Event) bool { return e.Peer.PID == late.PID() })
	noc := r.nextMatching(watcher.NameOwnerChanged, func(e watcher.Event) bool { return e.Name == "org.example.Late" })
	if noc.OldOwner != "" || noc.NewOwner == "" || noc.Peer == nil || noc.Peer.PID != late.PID() {
		t.Errorf("NameOwnerChanged = %+v, want org.example.Late taken by pid %d", noc, late.PID())
	}
	if p, ok := findPeer(r.w.Peers(), late.PID()); !ok || !p.Owns("org.example.Late") {
		t.Errorf("Peers() = %v, want pid %d owning org.example.Late", r.w.Peers(), late.PID())
	}

	bus.Kill()
	down := r.next(watcher.Down)
	for _, app := range []struct {
		app   *bustest.App
		names []string
	}{{early, []string{"org.example.Early", "org.example.Early2"}}, {late, []string{"org.example.Late"}}} {
		p, ok := findPeer(down.Peers, app.app.PID())
		if !ok {
			t.Fatalf("Down snapshot lacks pid %d: %v", app.app.PID(), down.Peers)
		}
		checkPeer(t, p, app.app, app.names...)
	}
	if r.w.Peers() != nil {
		t.Errorf("Peers() while down = %v, want none", r.w.Peers())
	}

	// The testapp exits when its bus goes; the peer leaves nothing behind.
	<-early.Exited()
	bus.Start()
	restarted := r.next(watcher.Restarted)
	if _, ok := findPeer(restarted.Peers, early.PID()); !ok {
		t.Errorf("Restarted does not carry the Down snapshot: %v", restarted.Peers)
	}
}

func checkPeer(t *testing.T, p watcher.Peer, app *bustest.App, names ...string) {
	t.Helper()
	exe := bustest.TestApp(t)
	if p.Exe != exe {
		t.Errorf("peer %v: exe %q, want %q", p, p.Exe, exe)
	}
	if !slices.Equal(p.Argv, app.Cmd.Args) {
		t.Errorf("peer %v: argv %q, want %q", p, p.Argv, app.Cmd.Args)
	}
	if !slices.Equal(p.Names, names) {
		t.Errorf("peer %v: names %q, want %q", p, p.Names, names)
	}
	if p.UID != os.Getuid() || p.StartTime == 0 || p.Cwd == "" || !strings.HasPrefix(p.UniqueName, ":") {
		t.Errorf("peer %+v: want uid %d, a start time, a cwd and a unique name", p, os.Getuid())
	}
}

func TestManyRestarts(t *testing.T) {
	n := 200
	if testing.Short() {
		n = 20
	}
	bus := bustest.New(t)
	r := watchBus(t, bus)
	r.next(watcher.Up)
	r.filesWatched()
	fds, goroutines := openFDs(t), runtime.NumGoroutine()

	// Each restart is reported exactly once: one Down, then one Up with
	// its Restarted, and nothing else in between.
	_, id := r.w.State()
	for i := range n {
		if i%2 == 0 {
			bus.Stop()
		} else {
			bus.Kill()
		}
		if e := r.nextEvent(); e.Kind != watcher.Down || e.ID != id {
			t.Fatalf("restart %d: got %v, want Down of %s", i, e, id)
		}
		bus.Start()
		up := r.nextEvent()
		if up.Kind != watcher.Up {
			t.Fatalf("restart %d: got %v, want Up", i, up)
		}
		if e := r.nextEvent(); e.Kind != watcher.Restarted || e.OldID != id || e.ID != up.ID {
			t.Fatalf("restart %d: got %v, want Restarted %s -> %s", i, e, id, up.ID)
		}
		id = up.ID
	}
	r.quiet(100 * time.Millisecond)

	// Connections, watches and goroutines of old buses are all released.
	waitFor(t, "fds and goroutines back to their start", func() bool {
		return openFDs(t) <= fds && runtime.NumGoroutine() <= goroutines
	}, func() string {
		return "fds " + itoa(openFDs(t)) + " (was " + itoa(fds) + "), goroutines " + itoa(runtime.NumGoroutine()) + " (was " + itoa(goroutines) + ")"
	})
}

func TestAbstractAndTCP(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  bustest.Option
	}{{"abstract", bustest.Abstract()}, {"tcp", bustest.TCP()}} {
		t.Run(tc.name, func(t *testing.T) {
			bus := bustest.New(t, tc.opt)
			r := watchBus(t, bus)
			up := r.next(watcher.Up)
			bus.Stop()
			r.next(watcher.Down)
			bus.Start()
			if e := r.next(watcher.Restarted); e.OldID != up.ID {
				t.Errorf("Restarted = %v, want old id %s", e, up.ID)
			}
		})
	}
}

func TestUnreachableAtStart(t *testing.T) {
	bus := bustest.New(t)
	bus.Stop()
	r := watchBus(t, bus)
	down := r.next(watcher.Down)
	if !strings.Contains(down.Reason, "not reachable") || down.ID != "" {
		t.Errorf("Down = %+v, want not reachable, no id", down)
	}
	r.quiet(200 * time.Millisecond)
	bus.Start()
	r.next(watcher.Up)
	// A bus never seen before did not restart.
	r.quiet(200 * time.Millisecond)
}

func TestBadAddress(t *testing.T) {
	for _, addr := range []string{
		"",
		"foo:bar=1",
		"unix:",
		"unix:path=",
		"unix:nonsense=1",
		"tcp:host=localhost,port=http",
		"tcp:host=localhost,port=70000",
		"unix:path=/a,abstract=b",
	} {
		_, err := watcher.New(watcher.Target{Name: "test", Address: addr})
		if !errors.Is(err, watcher.ErrBadAddress) {
			t.Errorf("New(%q) = %v, want ErrBadAddress", addr, err)
			continue
		}
		if !strings.Contains(err.Error(), "\""+addr+"\"") {
			t.Errorf("New(%q) error %q does not name the address", addr, err)
		}
	}
}

// A watcher that falls behind (a slow reader of its events, a burst of
// clients) is handed the signals past its buffer in any order; a client's
// join applied after its leave must not leave a peer that is gone in the
// inventory, where every later Down would report it as connected.
func TestNoGhostsAfterBacklog(t *testing.T) {
	bus := bustest.New(t)
	w, err := watcher.New(watcher.Target{Name: "test", Address: bus.Address()}, watcher.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan watcher.Event) // unbuffered: the test holds the watcher up
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		w.Run(ctx, events)
	}()
	defer func() {
		cancel()
		<-ran
	}()
	for e := range events {
		if e.Kind == watcher.Up {
			break
		}
	}
	// From here the test reads no event for a while: the watcher waits
	// to hand over its next, and the bus's signals pile up past its
	// buffer.
	for range 700 {
		c, err := dbus.Connect(bus.Address())
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	stays, err := dbus.Connect(bus.Address())
	if err != nil {
		t.Fatal(err)
	}
	defer stays.Close()
	want := stays.Names()[0]

	go func() {
		for {
			select {
			case <-events:
			case <-ctx.Done():
				return
			}
		}
	}()
	// Nothing on the bus tells when the watcher has caught up: its
	// inventory is looked at until it holds only the client that stayed.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(deadline)
	for {
		peers := w.Peers()
		if len(peers) == 1 && peers[0].UniqueName == want {
			return
		}
		select {
		case <-tick.C:
		case <-timeout:
			var names []string
			for _, p := range peers {
				names = append(names, p.UniqueName)
			}
			t.Fatalf("the watcher's inventory holds %d peers (%s) after the burst, want only %s", len(peers), strings.Join(names, " "), want)
		}
	}
}
