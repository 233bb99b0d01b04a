package tray

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"busmedic/relaunch/control"
	"busmedic/watcher/bustest"
)

func TestHoldsItem(t *testing.T) {
	names := []string{":1.42", "org.kde.StatusNotifierItem-7-1"}
	for _, tc := range []struct {
		name  string
		items []string
		want  bool
	}{
		{"by connection and path (KDE, Xfce, LXQt)", []string{":1.7/StatusNotifierItem", ":1.42/StatusNotifierItem"}, true},
		{"by connection alone", []string{":1.42"}, true},
		{"by well-known name", []string{"org.kde.StatusNotifierItem-7-1"}, true},
		{"by well-known name and path", []string{"org.kde.StatusNotifierItem-7-1/StatusNotifierItem"}, true},
		{"another connection with our prefix", []string{":1.420/StatusNotifierItem"}, false},
		{"another item", []string{"org.kde.StatusNotifierItem-70-1"}, false},
		{"none", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := holdsItem(tc.items, names); got != tc.want {
				t.Errorf("holdsItem(%q) = %v, want %v", tc.items, got, tc.want)
			}
		})
	}
}

// follow runs followWatcher for the item of conn until the test ends, and
// returns its reports. It never registers the item itself within the
// test's deadline: the test does, as systray would.
func follow(t *testing.T, bus *bustest.Bus, item *dbus.Conn) <-chan hostState {
	t.Helper()
	return followRegistering(t, bus, item, func(context.Context, string) error { return nil }, time.Hour)
}

// followRegistering is follow with the registering of the item after grace
// up to register.
func followRegistering(t *testing.T, bus *bustest.Bus, item *dbus.Conn, register func(context.Context, string) error, grace time.Duration) <-chan hostState {
	t.Helper()
	conn := connect(t, bus)
	ctx, cancel := context.WithCancel(context.Background())
	reports := make(chan hostState, 16)
	done := make(chan error, 1)
	go func() {
		done <- followWatcher(ctx, conn, []string{item.Names()[0]}, func(h hostState) { reports <- h }, register, grace)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("followWatcher: %v", err)
		}
	})
	return reports
}

// nextReport waits for followWatcher's next report.
func nextReport(t *testing.T, reports <-chan hostState) hostState {
	t.Helper()
	select {
	case h := <-reports:
		return h
	case <-time.After(deadline):
		t.Fatalf("no report within %s", deadline)
	}
	return hostState{}
}

// watchStatus follows the daemon's status on socket, as "busmedic status"
// would read it, until the test ends.
func watchStatus(t *testing.T, socket string) <-chan control.Status {
	t.Helper()
	c, err := control.Dial(t.Context(), socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ch, err := c.Watch(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// waitStatus waits for a status for which cond holds.
func waitStatus(t *testing.T, statuses <-chan control.Status, what string, cond func(control.Status) bool) control.Status {
	t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		select {
		case st, ok := <-statuses:
			if !ok {
				t.Fatalf("%s: the status stream ended", what)
			}
			if cond(st) {
				return st
			}
		case <-timer.C:
			t.Fatalf("%s: not within %s", what, deadline)
		}
	}
}

// register registers item's path with the watcher, as systray does.
func register(t *testing.T, item *dbus.Conn) {
	t.Helper()
	call := item.Object(watcherName, watcherPath).Call(watcherIface+".RegisterStatusNotifierItem", 0, "/StatusNotifierItem")
	if call.Err != nil {
		t.Fatal(call.Err)
	}
}

// followWatcher tells the watcher's coming and going, and whether it holds
// the item, from its signals; a watcher that holds the item already is
// read from its property.
func TestFollowWatcher(t *testing.T) {
	bus := bustest.New(t)
	item := connect(t, bus)
	reports := follow(t, bus, item)
	if h := nextReport(t, reports); h != (hostState{}) {
		t.Fatalf("first report %+v, want no watcher", h)
	}

	w := startSNW(t, bus)
	if h := nextReport(t, reports); h.watcher != w.conn.Names()[0] || h.registered {
		t.Fatalf("report %+v, want watcher %s without the item", h, w.conn.Names()[0])
	}
	// Another item's registration changes nothing; ours does.
	register(t, connect(t, bus))
	register(t, item)
	if h := nextReport(t, reports); h.watcher != w.conn.Names()[0] || !h.registered {
		t.Fatalf("report %+v, want the item registered with %s", h, w.conn.Names()[0])
	}

	// A follower that starts now reads the registration from the
	// property.
	if h := nextReport(t, follow(t, bus, item)); h.watcher != w.conn.Names()[0] || !h.registered {
		t.Fatalf("a new follower's first report %+v, want the item registered", h)
	}

	w.conn.Close()
	if h := nextReport(t, reports); h != (hostState{}) {
		t.Fatalf("report %+v after the watcher left, want none", h)
	}
}

// A watcher that goes the grace without the item, because nothing
// registered it or it refused, gets it from followWatcher: again, later,
// until it holds it.
func TestFollowWatcherRegisters(t *testing.T) {
	bus := bustest.New(t)
	item := connect(t, bus)
	attempts := make(chan error, 16)
	reports := followRegistering(t, bus, item, func(ctx context.Context, watcher string) error {
		err := registerItem(ctx, item, watcher)
		attempts <- err
		return err
	}, 10*time.Millisecond)
	if h := nextReport(t, reports); h != (hostState{}) {
		t.Fatalf("first report %+v, want no watcher", h)
	}
	w := startRefusingSNW(t, bus, 1)
	if h := nextReport(t, reports); h.watcher != w.conn.Names()[0] || h.registered {
		t.Fatalf("report %+v, want watcher %s without the item", h, w.conn.Names()[0])
	}
	if h := nextReport(t, reports); h.watcher != w.conn.Names()[0] || !h.registered {
		t.Fatalf("report %+v, want the item registered with %s", h, w.conn.Names()[0])
	}
	if err := <-attempts; err == nil {
		t.Errorf("the first registration worked; the watcher refuses it")
	}
	if err := <-attempts; err != nil {
		t.Errorf("the second registration: %v", err)
	}
	if r := w.next(t); r.Sender != item.Names()[0] || r.Service != itemPath {
		t.Errorf("registered %+v, want %s%s", r, item.Names()[0], itemPath)
	}
	select {
	case err := <-attempts:
		t.Errorf("registered again (%v) once the watcher held the item", err)
	default:
	}
}

// With no StatusNotifierWatcher on the bus the tray says it waits for
// one, once, and says it is shown only once a watcher (here the test's
// stand-in, as a panel's would) took its registration.
//
// It tells the daemon too, through the control socket, so that "busmedic
// status" says why there is no icon, and stops saying it once a watcher
// holds the item.
func TestTrayWaitsForWatcher(t *testing.T) {
	bus := bustest.New(t)
	socket := serveControl(t, newBackend())
	statuses := watchStatus(t, socket)
	stderr := superviseTray(t, bus, socket)
	stderr.waitText(t, "tray waits for a StatusNotifierWatcher")
	if strings.Contains(stderr.String(), "tray shown") {
		t.Fatalf("shown without a watcher:\n%s", stderr)
	}
	st := waitStatus(t, statuses, "the daemon told there is no watcher", func(st control.Status) bool {
		return st.Tray.Problem() != ""
	})
	var text bytes.Buffer
	if err := st.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if want := "The tray icon cannot show: no StatusNotifierWatcher; on GNOME install gnome-shell-extension-appindicator."; !strings.Contains(text.String(), want) {
		t.Errorf("busmedic status says:\n%s\nwant %q", text.String(), want)
	}

	w := startSNW(t, bus)
	w.next(t)
	stderr.waitText(t, "tray shown")
	waitStatus(t, statuses, "the daemon told the icon is shown", func(st control.Status) bool {
		return st.Tray != nil && st.Tray.Host != nil && st.Tray.Host.Shown && st.Tray.Problem() == ""
	})
	if n := strings.Count(stderr.String(), "tray waits for a StatusNotifierWatcher"); n != 1 {
		t.Errorf("said %d times that it waits, want once:\n%s", n, stderr)
	}
	if n := strings.Count(stderr.String(), "tray shown"); n != 1 {
		t.Errorf("said %d times that it is shown, want once:\n%s", n, stderr)
	}
}
