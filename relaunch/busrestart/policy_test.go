package busrestart_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"busmedic/appdb"
	"busmedic/relaunch"
	"busmedic/relaunch/busrestart"
	"busmedic/relaunch/control"
	"busmedic/watcher"
	"busmedic/watcher/bustest"
)

// screenSaver is a stand-in org.freedesktop.ScreenSaver on a test bus: the
// test says whether the user is at the screen; the idle time is how long
// since they stopped. Each GetSessionIdleTime answer is recorded.
type screenSaver struct {
	conn    *dbus.Conn
	mu      sync.Mutex
	inUse   bool
	idleAt  time.Time
	answers chan time.Duration
}

func (s *screenSaver) GetSessionIdleTime() (uint32, *dbus.Error) {
	s.mu.Lock()
	idle := time.Duration(0)
	if !s.inUse {
		idle = time.Since(s.idleAt)
	}
	s.mu.Unlock()
	s.answers <- idle
	return uint32(idle / time.Millisecond), nil
}

// leave makes the user leave the screen now; the screen saver says so.
func (s *screenSaver) leave(t *testing.T) time.Time {
	t.Helper()
	s.mu.Lock()
	s.inUse, s.idleAt = false, time.Now()
	at := s.idleAt
	s.mu.Unlock()
	if err := s.conn.Emit("/org/freedesktop/ScreenSaver", "org.freedesktop.ScreenSaver.ActiveChanged", true); err != nil {
		t.Fatal(err)
	}
	return at
}

func serveScreenSaver(t *testing.T, bus *bustest.Bus) *screenSaver {
	t.Helper()
	conn, err := dbus.Connect(bus.Address())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s := &screenSaver{conn: conn, inUse: true, answers: make(chan time.Duration, 64)}
	if err := conn.Export(s, "/org/freedesktop/ScreenSaver", "org.freedesktop.ScreenSaver"); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName("org.freedesktop.ScreenSaver", dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own org.freedesktop.ScreenSaver: %v %v", reply, err)
	}
	return s
}

// restarts records what the policy did, in order: "ordered BUS",
// "restart BUS" and "withdrawn BUS". With fail set, each restart fails.
type restarts struct {
	ch   chan string
	fail error
}

func newRestarts() *restarts { return &restarts{ch: make(chan string, 16)} }

func (r *restarts) ordered(bus string) func() {
	r.ch <- "ordered " + bus
	return func() { r.ch <- "withdrawn " + bus }
}
func (r *restarts) restart(ctx context.Context, bus string) error {
	r.ch <- "restart " + bus
	return r.fail
}

func (r *restarts) expect(t *testing.T, want ...string) {
	t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for _, w := range want {
		select {
		case got := <-r.ch:
			if got != w {
				t.Fatalf("policy did %q, want %q", got, w)
			}
		case <-timer.C:
			t.Fatalf("policy did not %q within %s", w, deadline)
		}
	}
}

func (r *restarts) none(t *testing.T) {
	t.Helper()
	select {
	case got := <-r.ch:
		t.Fatalf("policy did %q, want nothing", got)
	default:
	}
}

// runPolicy runs p on a channel of events until the test ends; decided
// receives "BUS OUTCOME" as each decision ends.
func runPolicy(t *testing.T, p *busrestart.Policy) (events chan<- watcher.Event, decided <-chan string) {
	t.Helper()
	if p.Log == nil {
		p.Log = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	dec := make(chan string, 16)
	p.Decided = func(bus, outcome string, err error) {
		if err != nil {
			t.Logf("decision on %s: %v", bus, err)
		}
		dec <- bus + " " + outcome
	}
	ch := make(chan watcher.Event, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(context.Background(), ch)
	}()
	t.Cleanup(func() {
		close(ch)
		<-done
	})
	return ch, dec
}

func expectDecided(t *testing.T, decided <-chan string, want string) {
	t.Helper()
	if got := recv(t, decided); got != want {
		t.Errorf("decided %q, want %q", got, want)
	}
}

func settings(mode string) func() appdb.Settings {
	return func() appdb.Settings { return appdb.Settings{RestartAfterUpdate: mode, IdleMinutes: 5} }
}

func outdated(bus string) watcher.Event {
	return watcher.Event{Kind: watcher.Outdated, Bus: bus, Reason: "replaced on disk since the bus started: /usr/bin/dbus-daemon"}
}

func TestPolicyWhenIdle(t *testing.T) {
	bus := bustest.New(t)
	ss := serveScreenSaver(t, bus)
	r := newRestarts()
	const idleAfter = 400 * time.Millisecond
	events, decided := runPolicy(t, &busrestart.Policy{
		Settings:       settings(busrestart.WhenIdle),
		IdleAfter:      idleAfter,
		SessionAddress: bus.Address,
		Ordered:        r.ordered,
		Restart:        r.restart,
	})
	events <- outdated("session")

	// The user is at the screen: the policy looks (at start, then when its
	// timer for the missing idle time runs out) and does nothing.
	for range 3 {
		if idle := recv(t, ss.answers); idle != 0 {
			t.Fatalf("idle %s while in use", idle)
		}
	}
	r.none(t)

	// The user leaves: the screen saver's signal makes the policy look
	// again, and it restarts once the idle time has passed, not before.
	left := ss.leave(t)
	for {
		if idle := recv(t, ss.answers); idle >= idleAfter {
			break
		}
		r.none(t)
	}
	r.expect(t, "ordered session", "restart session")
	expectDecided(t, decided, "session restarted")
	if since := time.Since(left); since < idleAfter {
		t.Errorf("restarted %s after the user left; want at least %s", since, idleAfter)
	}
}

func TestPolicyWhenIdleCancelledByDown(t *testing.T) {
	bus := bustest.New(t)
	ss := serveScreenSaver(t, bus)
	r := newRestarts()
	events, decided := runPolicy(t, &busrestart.Policy{
		Settings:       settings(busrestart.WhenIdle),
		IdleAfter:      time.Hour,
		SessionAddress: bus.Address,
		Ordered:        r.ordered,
		Restart:        r.restart,
	})
	events <- outdated("session")
	recv(t, ss.answers)
	// The outdated bus goes away by itself: nothing left to restart.
	events <- watcher.Event{Kind: watcher.Down, Bus: "session"}
	expectDecided(t, decided, "session cancelled")
	r.none(t)
}

// notifier is a stand-in Notifier that answers with a fixed action.
type notifier struct {
	choose string
	asked  chan string
}

func (n *notifier) Notify(ctx context.Context, title, body string, actions []string) (string, error) {
	n.asked <- title + ": " + body
	return n.choose, nil
}

func TestPolicyAsk(t *testing.T) {
	for _, tc := range []struct {
		name, choose, outcome string
		want                  []string
	}{
		{"restart now", busrestart.ActionRestart, "restarted", []string{"ordered system", "restart system"}},
		{"dismissed", "", "declined", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRestarts()
			n := &notifier{choose: tc.choose, asked: make(chan string, 4)}
			events, decided := runPolicy(t, &busrestart.Policy{Settings: settings(busrestart.Ask), Notifier: n, Ordered: r.ordered, Restart: r.restart})
			events <- outdated("system")
			expectDecided(t, decided, "system "+tc.outcome)
			select {
			case <-n.asked:
			default:
				t.Fatal("the user was not asked")
			}
			for _, w := range tc.want {
				if got := <-r.ch; got != w {
					t.Errorf("policy did %q, want %q", got, w)
				}
			}
			r.none(t)
		})
	}
}

// TestPolicyRestartFails: a restart that fails (polkit refused) takes its
// order back, so that no recovery is expected of it.
func TestPolicyRestartFails(t *testing.T) {
	r := newRestarts()
	r.fail = errors.New("interactive authorization refused")
	n := &notifier{choose: busrestart.ActionRestart, asked: make(chan string, 4)}
	events, decided := runPolicy(t, &busrestart.Policy{Settings: settings(busrestart.Ask), Notifier: n, Ordered: r.ordered, Restart: r.restart})
	events <- outdated("system")
	expectDecided(t, decided, "system failed")
	r.expect(t, "ordered system", "restart system", "withdrawn system")
	r.none(t)
}

// TestPolicyReportFor: the recovery after the policy's own restart gets
// the update report, once; others do not.
func TestPolicyReportFor(t *testing.T) {
	r := newRestarts()
	n := &notifier{choose: busrestart.ActionRestart, asked: make(chan string, 4)}
	p := &busrestart.Policy{Settings: settings(busrestart.Ask), Notifier: n, Ordered: r.ordered, Restart: r.restart}
	before := time.Now().Add(-time.Second)
	if _, ok := p.ReportFor(control.Recovery{Bus: "session", Started: time.Now()}); ok {
		t.Error("report before any restart")
	}
	events, decided := runPolicy(t, p)
	events <- outdated("session")
	expectDecided(t, decided, "session restarted")
	rec := control.Recovery{Bus: "session", Started: time.Now(), Jobs: []control.Job{{Outcome: control.Relaunched}}}
	for _, other := range []control.Recovery{{Bus: "system", Started: time.Now()}, {Bus: "session", Started: before}} {
		if _, ok := p.ReportFor(other); ok {
			t.Errorf("report for %+v", other)
		}
	}
	if msg, ok := p.ReportFor(rec); !ok || msg != "D-Bus updated without reboot: 1 app recovered, 0 need attention" {
		t.Errorf("ReportFor = %q, %v", msg, ok)
	}
	if _, ok := p.ReportFor(rec); ok {
		t.Error("second report for the same restart")
	}
}

func TestPolicyNever(t *testing.T) {
	r := newRestarts()
	n := &notifier{choose: busrestart.ActionRestart, asked: make(chan string, 4)}
	events, decided := runPolicy(t, &busrestart.Policy{Settings: settings(busrestart.Never), Notifier: n, Ordered: r.ordered, Restart: r.restart})
	events <- outdated("session")
	expectDecided(t, decided, "session never")
	r.none(t)
	select {
	case q := <-n.asked:
		t.Errorf("asked %q under never", q)
	default:
	}
}

// TestPolicyAskRestartsManagedBus goes the whole way on a real bus: the
// user picks "Restart now" and the session bus that busmedic runs is
// restarted, with Ordered told first.
func TestPolicyAskRestartsManagedBus(t *testing.T) {
	addr := "unix:path=" + t.TempDir() + "/bus"
	m := &busrestart.Managed{Address: addr, Log: slog.New(slog.DiscardHandler)}
	ctx, cancel := context.WithCancel(context.Background())
	mdone := make(chan error, 1)
	go func() { mdone <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-mdone; err != nil {
			t.Error(err)
		}
	})
	select {
	case <-m.Ready():
	case <-time.After(deadline):
		t.Fatal("managed bus daemon did not start")
	}
	before := busID(t, addr)
	ordered := make(chan string, 1)
	n := &notifier{choose: busrestart.ActionRestart, asked: make(chan string, 4)}
	events, decided := runPolicy(t, &busrestart.Policy{
		Settings: settings(busrestart.Ask), Notifier: n,
		Ordered: func(bus string) func() { ordered <- bus; return func() {} },
		Finder:  busrestart.Finder{Address: addr, Managed: m},
	})
	events <- outdated("session")
	expectDecided(t, decided, "session restarted")
	if bus := <-ordered; bus != "session" {
		t.Errorf("Ordered(%q)", bus)
	}
	if after := busID(t, addr); after == before {
		t.Errorf("bus id %s unchanged: not restarted", after)
	}
}

// recv returns the next value of ch within the deadline.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("nothing within %s", deadline)
		var zero T
		return zero
	}
}

// TestPolicyWhenIdleLogind: without a screen saver that tells the idle
// time, logind's IdleHint of the session decides.
func TestPolicyWhenIdleLogind(t *testing.T) {
	session := bustest.New(t)
	system := bustest.New(t, bustest.SystemType())
	logind := system.StartLogind()
	r := newRestarts()
	const idleAfter = 300 * time.Millisecond
	events, decided := runPolicy(t, &busrestart.Policy{
		Settings:       settings(busrestart.WhenIdle),
		IdleAfter:      idleAfter,
		SessionAddress: session.Address,
		SystemAddress:  system.Address,
		Ordered:        r.ordered,
		Restart:        r.restart,
	})
	// The user has been away for long already.
	logind.SetIdle(time.Now().Add(-time.Minute))
	events <- outdated("system")
	r.expect(t, "ordered system", "restart system")
	expectDecided(t, decided, "system restarted")
}

// TestPolicyWhenIdleLogindRestarts: logind restarting while the policy
// waits for the session to be idle (a systemd update in the same upgrade
// as dbus) does not end the wait; the new logind's IdleHint decides.
func TestPolicyWhenIdleLogindRestarts(t *testing.T) {
	session := bustest.New(t)
	system := bustest.New(t, bustest.SystemType())
	logind := system.StartLogind()
	r := newRestarts()
	waiting := make(chan struct{}, 1)
	events, decided := runPolicy(t, &busrestart.Policy{
		Settings:       settings(busrestart.WhenIdle),
		IdleAfter:      300 * time.Millisecond,
		SessionAddress: session.Address,
		SystemAddress:  system.Address,
		Ordered:        r.ordered,
		Restart:        r.restart,
		Log:            slog.New(onMessage{slog.NewTextHandler(t.Output(), nil), "restarting once the session is idle", waiting}),
	})
	events <- outdated("system")
	recv(t, waiting)
	logind.Stop()
	logind = system.StartLogind()
	logind.SetIdle(time.Now().Add(-time.Minute))
	r.expect(t, "ordered system", "restart system")
	expectDecided(t, decided, "system restarted")
}

// onMessage is a log handler that also tells, on a channel, that a record
// with the message was logged.
type onMessage struct {
	slog.Handler
	msg string
	ch  chan struct{}
}

func (h onMessage) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		select {
		case h.ch <- struct{}{}:
		default:
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h onMessage) WithAttrs(attrs []slog.Attr) slog.Handler {
	return onMessage{h.Handler.WithAttrs(attrs), h.msg, h.ch}
}

func (h onMessage) WithGroup(name string) slog.Handler {
	return onMessage{h.Handler.WithGroup(name), h.msg, h.ch}
}

// restart_system_bus_after_update overrides restart_after_update for the
// system bus only.
func TestPolicyPerBus(t *testing.T) {
	r := newRestarts()
	n := &notifier{choose: busrestart.ActionRestart, asked: make(chan string, 4)}
	s := appdb.DefaultSettings()
	s.RestartAfterUpdate, s.RestartSystemBusAfterUpdate = busrestart.Ask, busrestart.Never
	events, decided := runPolicy(t, &busrestart.Policy{Settings: func() appdb.Settings { return s }, Notifier: n, Ordered: r.ordered, Restart: r.restart})
	events <- outdated("system")
	expectDecided(t, decided, "system never")
	r.none(t)
}

// notificationServer is an org.freedesktop.Notifications on a test bus
// that answers every notification with the action in choose; the summary
// of each notification shown comes on shown.
type notificationServer struct {
	conn   *dbus.Conn
	choose string
	shown  chan string
}

func (s *notificationServer) Notify(app string, replaces uint32, icon, summary, body string, actions []string,
	hints map[string]dbus.Variant, timeout int32) (uint32, *dbus.Error) {
	const id = 5
	s.shown <- summary
	// The client subscribed before it called: the answer may come
	// before the reply.
	if err := s.conn.Emit("/org/freedesktop/Notifications", "org.freedesktop.Notifications.ActionInvoked", uint32(id), s.choose); err != nil {
		return 0, dbus.MakeFailedError(err)
	}
	return id, nil
}

func (s *notificationServer) CloseNotification(id uint32) *dbus.Error { return nil }

func serveNotifications(t *testing.T, bus *bustest.Bus, choose string) *notificationServer {
	t.Helper()
	conn, err := dbus.Connect(bus.Address())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s := &notificationServer{conn: conn, choose: choose, shown: make(chan string, 4)}
	if err := conn.Export(s, "/org/freedesktop/Notifications", "org.freedesktop.Notifications"); err != nil {
		t.Fatal(err)
	}
	if reply, err := conn.RequestName("org.freedesktop.Notifications", dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("own org.freedesktop.Notifications: %v %v", reply, err)
	}
	return s
}

// askOnBus is a policy under "ask" whose questions go through a real
// DesktopNotifier to session. waiting gets a value whenever the notifier
// waits for a notification server, again whenever the policy waits for the
// session bus to come back to ask again.
func askOnBus(t *testing.T, session *bustest.Bus, r *restarts) (events chan<- watcher.Event, decided <-chan string, waiting, again <-chan struct{}) {
	t.Helper()
	w, a := make(chan struct{}, 1), make(chan struct{}, 1)
	debug := slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})
	n := &relaunch.DesktopNotifier{Address: session.Address, Wait: time.Minute,
		Log: slog.New(onMessage{debug, "waiting for a notification server", w})}
	events, decided = runPolicy(t, &busrestart.Policy{
		Settings: settings(busrestart.Ask),
		Notifier: n,
		Ordered:  r.ordered,
		Restart:  r.restart,
		Log:      slog.New(onMessage{debug, "the question went with the session bus; asking again once the session bus is back", a}),
	})
	return events, decided, w, a
}

func noDecision(t *testing.T, decided <-chan string) {
	t.Helper()
	select {
	case d := <-decided:
		t.Fatalf("decided %q, want no decision yet", d)
	default:
	}
}

// TestPolicyAskSessionBusLost: under "ask" the question waits for a
// notification server on the session bus. The session bus going away
// meanwhile, stopped or killed, used to kill busmedic (a nil signal from
// the closed connection, issue 14). Now the question about the system bus
// is asked again on the new session bus, and the one about the session
// bus ends with the bus's Down: its outdated daemon is gone.
func TestPolicyAskSessionBusLost(t *testing.T) {
	for _, stop := range []struct {
		name string
		stop func(*bustest.Bus)
	}{
		{"SIGTERM", (*bustest.Bus).Stop},
		{"SIGKILL", (*bustest.Bus).Kill},
	} {
		t.Run("system bus outdated/"+stop.name, func(t *testing.T) {
			session := bustest.New(t)
			r := newRestarts()
			events, decided, waiting, again := askOnBus(t, session, r)
			events <- outdated("system")
			recv(t, waiting)
			stop.stop(session)
			recv(t, again)
			noDecision(t, decided)
			r.none(t)

			session.Start()
			srv := serveNotifications(t, session, busrestart.ActionRestart)
			events <- watcher.Event{Kind: watcher.Up, Bus: "session"}
			if title, _ := busrestart.AskText("system", ""); recv(t, srv.shown) != title {
				t.Error("the question asked again is not the one about the system bus")
			}
			r.expect(t, "ordered system", "restart system")
			expectDecided(t, decided, "system restarted")
		})
		t.Run("session bus outdated/"+stop.name, func(t *testing.T) {
			session := bustest.New(t)
			r := newRestarts()
			events, decided, waiting, _ := askOnBus(t, session, r)
			events <- outdated("session")
			recv(t, waiting)
			stop.stop(session)
			events <- watcher.Event{Kind: watcher.Down, Bus: "session"}
			expectDecided(t, decided, "session cancelled")
			r.none(t)
		})
	}
	// An update seen while the session bus is away: the question waits
	// for it.
	t.Run("session bus down when asked", func(t *testing.T) {
		session := bustest.New(t)
		r := newRestarts()
		events, decided, _, again := askOnBus(t, session, r)
		session.Stop()
		events <- outdated("system")
		recv(t, again)
		session.Start()
		srv := serveNotifications(t, session, busrestart.ActionRestart)
		events <- watcher.Event{Kind: watcher.Up, Bus: "session"}
		recv(t, srv.shown)
		r.expect(t, "ordered system", "restart system")
		expectDecided(t, decided, "system restarted")
	})
}
