package tray

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/prop"

	"busmedic/relaunch/control"
	"busmedic/watcher/bustest"
)

// TestLatency measures how fast the tray follows, each figure beside a
// floor measured in the same run: a status change to the new icon on the
// bus (NewIcon), beside what moving that icon over the bus costs alone (a
// plain client setting the same pixmaps on an item property); and a session bus
// restart to the item registered again with the watcher on the new bus,
// beside a minimal fyne.io/systray program started at that moment. It runs
// only when asked: see BENCH.md.
func TestLatency(t *testing.T) {
	benchOnly(t)
	const rounds = 40
	bus := bustest.New(t)
	w := startSNW(t, bus)
	b := newBackend()
	socket := serveControl(t, b)
	superviseTray(t, bus, socket)
	it := newItem(t, connect(t, bus), w.next(t))
	it.wantIcon(healthy)
	sigs := it.signals()

	// The floor: the same pixmaps set, over the same bus, on an item
	// property that a connection of the test's serves (the tray's are
	// read-only).
	server := connect(t, bus)
	if _, err := prop.Export(server, itemPath, prop.Map{itemIface: {"IconPixmap": {Value: []pixmap{}, Writable: true, Emit: prop.EmitTrue}}}); err != nil {
		t.Fatal(err)
	}
	floorObj := connect(t, bus).Object(server.Names()[0], itemPath)

	var icon, floor []time.Duration
	for i := range rounds {
		failed := i%2 == 0
		shown := attention
		if failed {
			shown = healthy
		}
		px, err := pixmaps(shown.Icon())
		if err != nil {
			t.Fatal(err)
		}
		set := time.Now()
		if err := floorObj.Call("org.freedesktop.DBus.Properties.Set", 0, itemIface, "IconPixmap", dbus.MakeVariant(px)).Err; err != nil {
			t.Fatal(err)
		}
		floor = append(floor, time.Since(set))
		changed := time.Now()
		b.Set(func(s *control.Status) {
			s.LastRecovery = nil
			if failed {
				s.LastRecovery = &control.Recovery{Bus: "session", Started: changed, Ended: changed,
					Jobs: []control.Job{{App: "dunst", Outcome: control.Failed, Reason: "exit status 1"}}}
			}
		})
		it.waitSignal(sigs, "org.kde.StatusNotifierItem.NewIcon")
		icon = append(icon, time.Since(changed))
	}
	want := healthy
	if rounds%2 == 1 {
		want = attention
	}
	it.wantIcon(want) // the signals were for the icons asked for
	report(t, "status change", "new icon", icon, "pixmaps set by a client", floor)

	// A bus restart: the tray child exits with its bus, the supervisor
	// starts a new one; a minimal program is started as the bus is back.
	minimal := buildTestdata(t, "minimal")
	var ours, cold []time.Duration
	for range rounds / 8 {
		bus.Kill()
		bus.Start()
		up := time.Now()
		w := startSNW(t, bus)
		m := exec.Command(minimal)
		m.Env = bus.Env()
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			r := w.next(t)
			var pid uint32
			if err := w.conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixProcessID", 0, r.Sender).Store(&pid); err != nil {
				t.Fatal(err)
			}
			if int(pid) == m.Process.Pid {
				cold = append(cold, r.At.Sub(up))
			} else {
				ours = append(ours, r.At.Sub(up))
			}
		}
		m.Process.Kill()
		m.Wait()
		// Pace the restarts as buses restart, not as a crash loop: the
		// supervisor backs off a tray that keeps losing its bus.
		<-time.After(busStableAfter)
	}
	if len(ours) != len(cold) {
		t.Fatalf("%d registrations of the tray, %d of the minimal program", len(ours), len(cold))
	}
	report(t, "bus restart", "tray registered", ours, "minimal started", cold)
}

// report logs the median and worst of a figure and of its floor, and their
// ratio, and prints a RESULT line for scripts.
func report(t *testing.T, what, name string, got []time.Duration, floorName string, floor []time.Duration) {
	t.Helper()
	slices.Sort(got)
	slices.Sort(floor)
	med := func(d []time.Duration) time.Duration { return d[len(d)/2] }
	worst := func(d []time.Duration) time.Duration { return d[len(d)-1] }
	t.Logf("%s, %d rounds: %s median %s, worst %s; %s median %s, worst %s; ratio %.2f (median)",
		what, len(got), name, med(got), worst(got), floorName, med(floor), worst(floor),
		float64(med(got))/float64(med(floor)))
	fmt.Fprintf(os.Stderr, "RESULT %q median=%s worst=%s floor_median=%s floor_worst=%s ratio=%.2f\n",
		what, med(got), worst(got), med(floor), worst(floor), float64(med(got))/float64(med(floor)))
}
