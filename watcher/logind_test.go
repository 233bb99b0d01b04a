package watcher_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"busmedic/watcher"
	"busmedic/watcher/bustest"
)

func followLogind(t *testing.T, bus *bustest.Bus) *watcher.Logind {
	t.Helper()
	return runLogind(t, newLogind(t, bus))
}

func newLogind(t *testing.T, bus *bustest.Bus) *watcher.Logind {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	l, err := watcher.NewLogind(watcher.Target{Name: "system", Address: bus.Address()}, log)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// runLogind runs l until the test ends.
func runLogind(t *testing.T, l *watcher.Logind) *watcher.Logind {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return l
}

// waitState waits for the Logind to report state.
func waitState(t *testing.T, l *watcher.Logind, state string) {
	t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for l.State() != state {
		select {
		case <-l.Changed():
		case <-timer.C:
			t.Fatalf("logind state %q, want %q", l.State(), state)
		}
	}
}

func TestLogindClosing(t *testing.T) {
	bus := bustest.New(t, bustest.SystemType())
	login := bus.StartLogind()
	l := followLogind(t, bus)
	waitState(t, l, "active")
	if ending, why := l.Ending(); ending {
		t.Fatalf("Ending() with an active session = true (%s)", why)
	}
	login.SetState("closing")
	waitState(t, l, "closing")
	if ending, why := l.Ending(); !ending || !strings.Contains(why, "closing") {
		t.Errorf("Ending() = %v %q, want the session closing", ending, why)
	}
}

// A user who does not linger is "closing" once the last session ends:
// logind stops the user's manager, and dbus.service with it, maybe before
// busmedic has seen a session close (one with nothing left in it is
// removed at once, and the user's Display is then none). Ending reads the
// user's State, which logind tells no change of, both in a session of our
// own and in a user unit.
func TestLogindUserClosing(t *testing.T) {
	for _, inUnit := range []bool{false, true} {
		name := "in a session"
		if inUnit {
			name = "in a user unit"
		}
		t.Run(name, func(t *testing.T) {
			bus := bustest.New(t, bustest.SystemType())
			var login *bustest.Logind
			l := newLogind(t, bus)
			following := make(chan string, 16)
			watcher.SetFollowing(l, func(session string) { following <- session })
			if inUnit {
				login = bus.StartLogindInUnit()
			} else {
				login = bus.StartLogind()
			}
			runLogind(t, l)
			select {
			case <-following:
			case <-time.After(deadline):
				t.Fatal("the follower follows nothing")
			}
			if ending, why := l.Ending(); ending {
				t.Fatalf("Ending() with an active user = true (%s)", why)
			}
			login.SetUserState("closing")
			ending, why := l.Ending()
			if !ending || !strings.Contains(why, "user "+string(login.UserPath)+" is closing") {
				t.Errorf("Ending() = %v %q, want the user %s closing", ending, why, login.UserPath)
			}
			// The system bus may go with the session: what was read last
			// stays known.
			bus.Kill()
			if ending, _ := l.Ending(); !ending {
				t.Error("Ending() forgot the closing user when the bus went down")
			}
		})
	}
}

func TestLogindShutdown(t *testing.T) {
	bus := bustest.New(t, bustest.SystemType())
	login := bus.StartLogind()
	l := followLogind(t, bus)
	waitState(t, l, "active")
	login.PrepareForShutdown(true)
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		if ending, why := l.Ending(); ending {
			if !strings.Contains(why, "shutting down") {
				t.Errorf("Ending() reason %q", why)
			}
			break
		}
		select {
		case <-l.Changed():
		case <-timer.C:
			t.Fatal("PrepareForShutdown(true) not seen")
		}
	}
}

// In a systemd user unit busmedic is in no session: it follows its user's
// display session, which may start after busmedic (a lingering user's
// manager starts at boot, before any login) and end before the next one
// starts.
func TestLogindFollowsDisplay(t *testing.T) {
	bus := bustest.New(t, bustest.SystemType())
	login := bus.StartLogindInUnit()
	l := newLogind(t, bus)
	following := make(chan string, 16)
	watcher.SetFollowing(l, func(session string) { following <- session })
	runLogind(t, l)
	follows := func(want dbus.ObjectPath) {
		t.Helper()
		timer := time.NewTimer(deadline)
		defer timer.Stop()
		for {
			select {
			case s := <-following:
				if s == string(want) {
					return
				}
			case <-timer.C:
				t.Fatalf("the follower does not follow the session %q", want)
			}
		}
	}
	follows("") // no display session yet: only a shutdown
	if ending, why := l.Ending(); ending {
		t.Fatalf("Ending() with no display session = true (%s)", why)
	}
	// The user logs in after busmedic started.
	login.SetDisplay(true)
	follows(login.SessionPath)
	login.SetState("closing")
	if ending, why := l.Ending(); !ending || !strings.Contains(why, string(login.SessionPath)) {
		t.Errorf("Ending() = %v %q, want the display session %s closing", ending, why, login.SessionPath)
	}
	// The display session is gone: nothing is closing any more.
	login.SetDisplay(false)
	follows("")
	if ending, why := l.Ending(); ending {
		t.Errorf("Ending() with the display session gone = true (%s)", why)
	}
	// A shutdown announced stays known when the display changes.
	login.SetState("active")
	login.SetDisplay(true)
	follows(login.SessionPath)
	login.PrepareForShutdown(true)
	waitFor(t, "PrepareForShutdown seen", func() bool { ending, _ := l.Ending(); return ending }, func() string { _, why := l.Ending(); return why })
	login.SetDisplay(false)
	follows("")
	if ending, why := l.Ending(); !ending || !strings.Contains(why, "shutting down") {
		t.Errorf("Ending() = %v %q after the display session ended in a shutdown, want the shutdown", ending, why)
	}
}

// The last state read stays known when the system bus goes down with the
// session, and logind is followed again when the bus comes back.
func TestLogindSurvivesBusRestart(t *testing.T) {
	bus := bustest.New(t, bustest.SystemType())
	login := bus.StartLogind()
	l := followLogind(t, bus)
	waitState(t, l, "active")
	login.SetState("closing")
	waitState(t, l, "closing")
	bus.Kill()
	if ending, _ := l.Ending(); !ending {
		t.Error("Ending() forgot the closing session when the bus went down")
	}
	bus.Start()
	bus.StartLogind() // a new logind: the session is active again
	waitState(t, l, "active")
}

// Without logind the follower waits for it on one connection, and follows
// it once it appears.
func TestLogindLate(t *testing.T) {
	bus := bustest.New(t, bustest.SystemType())
	r := watchBus(t, bus)
	r.next(watcher.Up)
	l := followLogind(t, bus)
	// One connection that waits, not one per retry: a retrying follower
	// would join and leave the bus many times in a second, waking every
	// program that watches it.
	joins := 0
	quiet := time.NewTimer(time.Second)
	for waiting := true; waiting; {
		select {
		case e := <-r.events:
			if e.Kind == watcher.PeerJoined {
				joins++
			}
		case <-quiet.C:
			waiting = false
		}
	}
	if joins > 1 {
		t.Errorf("the logind follower joined the bus %d times in a second while logind was absent", joins)
	}
	bus.StartLogind()
	waitState(t, l, "active")
}

// logind restarts while the system bus stays up when systemd is updated.
// The follower follows the name on its one connection: it asks the new
// logind for the session (here at another path) and hears its signals.
func TestLogindRestart(t *testing.T) {
	bus := bustest.New(t, bustest.SystemType())
	r := watchBus(t, bus)
	r.next(watcher.Up)
	login := bus.StartLogind()
	l := followLogind(t, bus)
	waitState(t, l, "active")

	login.Stop()
	if ending, why := l.Ending(); ending {
		t.Fatalf("Ending() with logind gone = true (%s)", why)
	}
	login = bus.StartLogind()
	login.SetState("closing")
	waitState(t, l, "closing")
	if ending, why := l.Ending(); !ending || !strings.Contains(why, string(login.SessionPath)) {
		t.Errorf("Ending() = %v %q, want the session %s closing", ending, why, login.SessionPath)
	}

	login.Stop()
	login = bus.StartLogind()
	waitState(t, l, "active")
	login.PrepareForShutdown(true)
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for ending, why := l.Ending(); !ending || !strings.Contains(why, "shutting down"); ending, why = l.Ending() {
		select {
		case <-l.Changed():
		case <-timer.C:
			t.Fatalf("PrepareForShutdown(true) of the new logind not seen; Ending() = %v %q", ending, why)
		}
	}

	// The follower never left the bus: the only peers gone before a
	// marker joins are the two stopped loginds.
	marker, err := dbus.Connect(bus.Address())
	if err != nil {
		t.Fatal(err)
	}
	defer marker.Close()
	left := 0
	for {
		e := r.nextEvent()
		if e.Kind == watcher.PeerLeft {
			left++
		}
		if e.Kind == watcher.PeerJoined && e.Peer != nil && e.Peer.UniqueName == marker.Names()[0] {
			break
		}
	}
	if left != 2 {
		t.Errorf("%d peers left the bus while logind restarted twice, want 2 (the follower reconnected?):\n%s", left, r.history())
	}
}

// TestLogindIgnoresImpostors: a PrepareForShutdown or a session change sent
// by another peer of the system bus, broadcast or to busmedic alone, is not
// taken for logind's.
func TestLogindIgnoresImpostors(t *testing.T) {
	bus := bustest.New(t, bustest.SystemType())
	login := bus.StartLogind()
	l := followLogind(t, bus)
	waitState(t, l, "active")

	impostor, err := dbus.Connect(bus.Address())
	if err != nil {
		t.Fatal(err)
	}
	defer impostor.Close()
	var peers []string
	if err := impostor.BusObject().Call("org.freedesktop.DBus.ListNames", 0).Store(&peers); err != nil {
		t.Fatal(err)
	}
	// To each peer alone: the bus hands such a signal over without a
	// match rule.
	shutdown := func(dest string) *dbus.Message {
		m := &dbus.Message{Type: dbus.TypeSignal, Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldPath:        dbus.MakeVariant(dbus.ObjectPath("/org/freedesktop/login1")),
			dbus.FieldInterface:   dbus.MakeVariant("org.freedesktop.login1.Manager"),
			dbus.FieldMember:      dbus.MakeVariant("PrepareForShutdown"),
			dbus.FieldSignature:   dbus.MakeVariant(dbus.SignatureOf(true)),
			dbus.FieldDestination: dbus.MakeVariant(dest),
		}, Body: []any{true}}
		return m
	}
	send := func(m *dbus.Message) {
		if call := <-impostor.Send(m, make(chan *dbus.Call, 1)).Done; call.Err != nil {
			t.Fatal(call.Err)
		}
	}
	if err := impostor.Emit("/org/freedesktop/login1", "org.freedesktop.login1.Manager.PrepareForShutdown", true); err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		if strings.HasPrefix(p, ":") {
			send(shutdown(p))
		}
	}
	// The bus routes one peer's messages in order: once it has answered
	// this call, everything the impostor sent is on its way, ahead of
	// logind's next change.
	if err := impostor.BusObject().Call("org.freedesktop.DBus.GetId", 0).Err; err != nil {
		t.Fatal(err)
	}
	login.SetState("closing")
	waitState(t, l, "closing")
	if ending, why := l.Ending(); !ending || strings.Contains(why, "shutting down") {
		t.Errorf("Ending() = %v %q; want the session closing, not a shutdown an impostor announced", ending, why)
	}
}
