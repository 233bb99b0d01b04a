package tray

import (
	"slices"
	"strings"
	"testing"
	"time"

	"busmedic/relaunch/control"
	"busmedic/watcher/bustest"
)

// TestTray runs the tray child under Supervise on a real bus, with a
// StatusNotifierWatcher and a control socket written here, and reads it
// back as a panel does.
func TestTray(t *testing.T) {
	bus := bustest.New(t)
	watcher := startSNW(t, bus)
	b := newBackend()
	editor := fakeEditor(t, bus)
	socket := serveControl(t, b)
	stderr := superviseTray(t, bus, socket)

	reg := watcher.next(t)
	if reg.Service != "/StatusNotifierItem" {
		t.Errorf("registered %q, want the item's path", reg.Service)
	}
	stderr.waitText(t, "tray shown")
	if strings.Contains(stderr.String(), "tray waits for a StatusNotifierWatcher") {
		t.Errorf("the tray said it waits although a watcher was there:\n%s", stderr)
	}
	it := newItem(t, connect(t, bus), reg)
	sigs := it.signals()

	if v := it.prop("Title").Value(); v != title {
		t.Errorf("Title = %v, want %q", v, title)
	}
	it.wantIcon(healthy)
	if tip := it.tooltip(); tip != "busmedic: all buses up, 1 app watched" {
		t.Errorf("ToolTip = %q", tip)
	}

	menu := it.layout()
	want := []string{"Session bus: up since", "System bus: up since", "-", "Apps", "Fell off the bus", "-",
		"Restart session bus", "Edit rules…", "Recovery history…", "Pause automatic recovery", "-", "Quit"}
	got := menu.labels()
	if len(got) != len(want) {
		t.Fatalf("menu %q, want %q", got, want)
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("menu item %d is %q, want %q", i, got[i], want[i])
		}
	}
	apps, _ := menu.find("Apps")
	var appLabels []string
	for _, c := range apps.Children {
		if c.visible() {
			appLabels = append(appLabels, c.label())
		}
	}
	if !slices.Equal(appLabels, []string{"Dunst: running"}) {
		t.Errorf("Apps submenu %q, want [Dunst: running]", appLabels)
	}
	if hist, _ := menu.find("Recovery history"); !hist.enabled() {
		t.Errorf("Recovery history item %q disabled with the editor installed", hist.label())
	}

	t.Run("edit rules", func(t *testing.T) {
		it := it.with(t)
		edit, _ := menu.find("Edit rules")
		it.click(edit)
		select {
		case args := <-editor:
			if args != "-control "+socket {
				t.Errorf("busmedic-rules started with %q, want -control %s", args, socket)
			}
		case <-time.After(deadline):
			t.Fatal("busmedic-rules not started")
		}
	})

	t.Run("pause", func(t *testing.T) {
		it := it.with(t)
		pause, _ := menu.find("Pause automatic recovery")
		if pause.toggled() {
			t.Fatal("paused before the click")
		}
		it.click(pause)
		b.waitOp(t, "pause")
		// The daemon's new status comes back as a ticked checkbox.
		it.waitFor(sigs, "checkbox ticked", func() bool {
			p, _ := it.layout().find("Pause automatic recovery")
			return p.toggled()
		})
	})

	// What destroys takes two clicks: a click on the app, or on "Restart
	// session bus", opens a submenu; only its item, which says what it
	// does, acts. A click that fails is said in a notification.
	t.Run("relaunch app", func(t *testing.T) {
		it := it.with(t)
		dunst, _ := it.layout().find("Dunst")
		if d, _ := dunst.Props["children-display"].Value().(string); d != "submenu" || len(dunst.Children) != 1 {
			t.Fatalf("Dunst item %+v: want a submenu with one item", dunst)
		}
		it.click(dunst) // relaunches nothing
		relaunch := dunst.Children[0]
		if relaunch.label() != "Relaunch now (stops it and starts it again)" {
			t.Errorf("relaunch item of a running app %q: want it to say that it stops it", relaunch.label())
		}
		it.click(relaunch)
		b.waitOp(t, "relaunch dunst")
	})

	t.Run("restart refused", func(t *testing.T) {
		it := it.with(t)
		restart, _ := it.layout().find("Restart session bus")
		now, ok := restart.find("Restart now")
		if !ok || now.label() != "Restart now: 1 app will be relaunched" || !now.enabled() {
			t.Fatalf("restart submenu %+v: want Restart now, saying what the restart does", restart.Children)
		}
		it.click(restart) // restarts nothing
		it.click(now)
		b.waitOp(t, "restart-bus session")
		n := b.nextNotice(t)
		if n.Title != "busmedic: Restart of the session bus failed" || !strings.Contains(n.Body, "refused, in words the tray does not read") {
			t.Errorf("notice %+v: want the failure and the daemon's reason", n)
		}
		it.waitFor(sigs, "why the restart cannot be done, instead of Restart now", func() bool {
			r, _ := it.layout().find("Restart session bus")
			note, ok := r.find("Not possible")
			now, _ := r.find("Restart now")
			return r.enabled() && r.label() == "Restart session bus" && ok && !note.enabled() &&
				note.label() == "Not possible: started by dbus-launch" && !now.visible()
		})
	})

	t.Run("failed job", func(t *testing.T) {
		it := it.with(t)
		changed := time.Now()
		b.Set(func(s *control.Status) {
			s.LastRecovery = &control.Recovery{Bus: "session", Started: changed, Ended: changed,
				Jobs: []control.Job{{App: "dunst", Outcome: control.Failed, Reason: "exit status 1"}}}
			s.Casualties = []control.Casualty{{ID: "c1", Bus: "session", At: changed}}
			s.Casualties[0].Peer.UniqueName = ":1.9"
			s.Casualties[0].Peer.Argv = []string{"/usr/bin/blueman-applet"}
		})
		// How fast is measured in TestLatency (see BENCH.md).
		it.waitFor(sigs, "the attention icon", func() bool { return it.showsIcon(attention) })
		if tip := it.tooltip(); !strings.Contains(tip, "dunst failed: exit status 1") || !strings.Contains(tip, "1 fell off the bus") {
			t.Errorf("ToolTip = %q", tip)
		}
		// "Always relaunch" on the casualty makes a rule of it.
		it.waitFor(sigs, "casualty listed", func() bool {
			c, ok := it.layout().find("blueman-applet")
			return ok && c.visible() && len(c.Children) == 2
		})
		c, _ := it.layout().find("blueman-applet")
		it.click(c.Children[1])
		b.waitOp(t, "learn c1")
	})

	// The clicks on the bare items came long before the last click
	// above, which the tray handled: had they done anything, it would
	// be counted by now.
	for _, op := range []string{"relaunch dunst", "restart-bus session"} {
		if n := b.times(op); n != 1 {
			t.Errorf("%s asked for %d times, want once: a click on its submenu's parent must do nothing", op, n)
		}
	}
}

// TestPanelRestart replaces the StatusNotifierWatcher, as a panel restart
// does while the bus stays: the same tray registers with the new one.
func TestPanelRestart(t *testing.T) {
	bus := bustest.New(t)
	rules := matchRules(t, bus)
	first := startSNW(t, bus)
	superviseTray(t, bus, serveControl(t, newBackend()))
	old := first.next(t)
	// systray subscribes to watcher changes only after registering.
	waitMatchRule(t, rules, old.Sender, "org.kde.StatusNotifierWatcher")
	first.conn.Close()
	// A watcher that appears between systray's match rule and its reading
	// of signals is missed by systray; the tray registers with it then.
	if reg := startSNW(t, bus).next(t); reg.Sender != old.Sender {
		t.Errorf("registered from %s, want the same tray (%s)", reg.Sender, old.Sender)
	}
}

// TestTrayBusRestart kills the session bus under the tray: the child exits,
// the supervisor starts a new one, and it registers with the watcher on the
// new bus.
func TestTrayBusRestart(t *testing.T) {
	bus := bustest.New(t)
	first := startSNW(t, bus)
	b := newBackend()
	stderr := superviseTray(t, bus, serveControl(t, b))
	first.next(t)

	bus.Kill()
	bus.Start()
	snwAt := time.Now()
	second := startSNW(t, bus)
	reg := second.next(t)
	t.Logf("registered again %s after the new watcher appeared (TestLatency measures it)", reg.At.Sub(snwAt))
	it := newItem(t, connect(t, bus), reg)
	it.wantIcon(healthy)
	if !strings.Contains(stderr.String(), "code=3") {
		t.Errorf("the supervisor did not see the child exit with ExitBusLost")
	}
}

// TestTrayWaitsForBus starts the tray while the session bus is down: it
// waits (without exiting, so the supervisor does not spin) and shows
// itself once the bus is back.
func TestTrayWaitsForBus(t *testing.T) {
	bus := bustest.New(t)
	bus.Kill()
	stderr := superviseTray(t, bus, serveControl(t, newBackend()))
	stderr.waitText(t, "waiting for the session bus")
	bus.Start()
	reg := startSNW(t, bus).next(t)
	newItem(t, connect(t, bus), reg).wantIcon(healthy)
	if n := strings.Count(stderr.String(), "tray started"); n != 1 {
		t.Errorf("tray started %d times, want once", n)
	}
}

// TestWatcherMissedRegistration gives the tray a StatusNotifierWatcher that
// does not hold the item and will not be replaced: systray registers only
// when it starts and when a watcher appears, so nothing would register the
// item again. After a bus restart that happens when the panel's watcher
// appears between systray's failed registration and its subscription to
// watcher changes (the LXQt benchmark's icon that never came back); here a
// watcher that refuses the first registration stands in for that window.
// The tray registers the item itself and says it is shown.
func TestWatcherMissedRegistration(t *testing.T) {
	bus := bustest.New(t)
	w := startRefusingSNW(t, bus, 1)
	stderr := superviseTray(t, bus, serveControl(t, newBackend()))
	reg := w.next(t)
	stderr.waitText(t, "tray shown")
	newItem(t, connect(t, bus), reg).wantIcon(healthy)
}
