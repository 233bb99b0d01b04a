package relaunch

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"busmedic/relaunch/control"
	"busmedic/watcher"
	"busmedic/watcher/bustest"
)

func TestDeafCandidates(t *testing.T) {
	uid := currentUID()
	activatable := map[string]bool{"org.kde.kglobalaccel": true, "org.kde.ActivityManager": true, "org.freedesktop.systemd1": true}
	peer := func(f func(p *watcher.Peer)) watcher.Peer {
		p := watcher.Peer{UniqueName: ":1.9", PID: 100, StartTime: 5, UID: uid, Names: []string{"org.kde.kglobalaccel"},
			Argv: []string{"/usr/bin/kglobalaccel5"}}
		if f != nil {
			f(&p)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		peer watcher.Peer
		want bool
	}{
		{"an on-demand service", peer(nil), true},
		{"two activatable names", peer(func(p *watcher.Peer) { p.Names = []string{"org.kde.ActivityManager", "org.kde.kglobalaccel"} }), true},
		{"one name the bus cannot start", peer(func(p *watcher.Peer) { p.Names = []string{"org.kde.kglobalaccel", "org.kde.other"} }), false},
		{"no names", peer(func(p *watcher.Peer) { p.Names = nil }), false},
		{"another user's", peer(func(p *watcher.Peer) { p.UID = uid + 1 }), false},
		{"uid unknown", peer(func(p *watcher.Peer) { p.UID = -1 }), false},
		{"start time unknown", peer(func(p *watcher.Peer) { p.StartTime = 0 }), false},
		{"pid unknown", peer(func(p *watcher.Peer) { p.PID = 0 }), false},
		{"in a systemd unit", peer(func(p *watcher.Peer) { p.Unit = "plasma-kglobalaccel.service" }), false},
		{"in dbus.service, started by dbus-daemon", peer(func(p *watcher.Peer) { p.Unit = "dbus.service" }), false},
		{"in the unit dbus-broker started it in",
			peer(func(p *watcher.Peer) { p.Unit = "dbus-:1.2-org.kde.kglobalaccel@0.service" }), true},
		{"in dbus-broker's unit for another service",
			peer(func(p *watcher.Peer) { p.Unit = "dbus-:1.2-org.kde.ActivityManager@0.service" }), false},
		{"in dbus-broker's unit, another user's",
			peer(func(p *watcher.Peer) { p.Unit, p.UID = "dbus-:1.2-org.kde.kglobalaccel@0.service", uid+1 }), false},
		{"in dbus-broker's unit, start time unknown",
			peer(func(p *watcher.Peer) { p.Unit, p.StartTime = "dbus-:1.2-org.kde.kglobalaccel@0.service", 0 }), false},
		{"had left by itself", peer(func(p *watcher.Peer) { p.MayHaveLeft = true }), false},
		{"the user's systemd, whose name is activatable", peer(func(p *watcher.Peer) {
			p.Names, p.Argv = []string{"org.freedesktop.systemd1"}, []string{"/lib/systemd/systemd", "--user"}
		}), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := deafCandidates([]watcher.Peer{tc.peer}, activatable, uid)
			if (len(got) == 1) != tc.want {
				t.Errorf("candidates %v, want candidate: %v", got, tc.want)
			}
		})
	}
}

func TestBrokerUnitName(t *testing.T) {
	for _, tc := range []struct {
		unit, name string // name "": not a unit of dbus-broker's
	}{
		// As dbus-broker-launch names them (the OnDemand and Stubborn
		// ones as test/systemd sees them in Debian 12).
		{"dbus-:1.2-org.kde.kglobalaccel@0.service", "org.kde.kglobalaccel"},
		{"dbus-:1.2-org.busmedic.test.OnDemand@1.service", "org.busmedic.test.OnDemand"},
		{"dbus-:1.3-org.freedesktop.portal.IBus@12.service", "org.freedesktop.portal.IBus"},
		{"dbus-:1.123-org.a_b.C9@0.service", "org.a_b.C9"},
		// A bus name's "-" is escaped.
		{`dbus-:1.2-org.busmedic.test.Stubborn\x2dDeaf@0.service`, "org.busmedic.test.Stubborn-Deaf"},
		{`dbus-:1.2-org.x\x2dy\x2dz.A@3.service`, "org.x-y-z.A"},

		// Look-alikes.
		{"dbus.service", ""},
		{"dbus-broker.service", ""},
		{"dbus-daemon.service", ""},
		{"dbus-foo.service", ""},
		{"dbus-foo@1.service", ""},
		{"dbus-org.freedesktop.Notifications.service", ""}, // an alias for SystemdService=
		{"dbus-:1.2-org.kde.kglobalaccel.service", ""},     // no instance
		{"dbus-:1.2-org.kde.kglobalaccel@.service", ""},    // the template
		{"dbus-:1.2-org.kde.kglobalaccel@x.service", ""},
		{"dbus-:1.2-org.kde.kglobalaccel@0.scope", ""},
		{"dbus-1.2-org.kde.kglobalaccel@0.service", ""}, // no unique name
		{"dbus-:1.2-@0.service", ""},
		{"dbus-:1.2-org.kde-kglobalaccel@0.service", ""}, // dbus-broker escapes a "-"
		{"dbus-:1.2-org.kde-org.kde.kglobalaccel@0.service", ""},
		{"dbus-:a-b.c-org.example.Foo@0.service", ""}, // dbus-broker's unique names are ":1.N"
		{"dbus-:1.2.3-org.example.Foo@0.service", ""},
		{`dbus-:1.2-org.kde.k\x2Dga@0.service`, ""}, // systemd writes lower-case hex
		{`dbus-:1.2-org.kde.k\x2@0.service`, ""},
		{"app-dbus-:1.2-org.kde.kglobalaccel@0.service", ""},
		{"plasma-kglobalaccel.service", ""},
		{"app-org.kde.kglobalaccel@autostart.service", ""},
	} {
		t.Run(tc.unit, func(t *testing.T) {
			name, ok := brokerUnitName(tc.unit)
			if name != tc.name || ok != (tc.name != "") {
				t.Errorf("brokerUnitName(%q) = %q, %v; want %q", tc.unit, name, ok, tc.name)
			}
		})
	}
}

func TestJudgeDeaf(t *testing.T) {
	old := watcher.Peer{UniqueName: ":1.9", PID: 100, StartTime: 5, Names: []string{"org.kde.kglobalaccel"}}
	newCopy := watcher.Peer{UniqueName: ":2.3", PID: 200, StartTime: 9, Names: []string{"org.kde.kglobalaccel"}}
	back := old
	back.UniqueName = ":2.4"
	activatable := map[string]bool{"org.kde.kglobalaccel": true}
	noRule := func(watcher.Peer) (string, bool) { return "", false }
	view := func(f func(v *deafView)) deafView {
		v := deafView{owners: map[string]string{"org.kde.kglobalaccel": ":2.3"},
			peers: map[string]watcher.Peer{":2.3": newCopy}, activatable: activatable, enabled: true, rule: noRule}
		if f != nil {
			f(&v)
		}
		return v
	}
	for _, tc := range []struct {
		name string
		view deafView
		want deafVerdict
		why  string
	}{
		{"the bus started a new copy", view(nil), deafStop, ""},
		{"nobody asked for the name yet", view(func(v *deafView) { clear(v.owners) }), deafWait, ""},
		{"the old process came back",
			view(func(v *deafView) { v.owners["org.kde.kglobalaccel"] = ":2.4"; v.peers[":2.4"] = back }), deafBack, ""},
		{"turned off", view(func(v *deafView) { v.enabled = false }), deafLeave, "stop_deaf_services = false"},
		{"paused", view(func(v *deafView) { v.paused = true }), deafHeld, "recovery is paused"},
		{"paused and turned off", view(func(v *deafView) { v.paused, v.enabled = true, false }), deafLeave, "stop_deaf_services = false"},
		{"no longer activatable", view(func(v *deafView) { v.activatable = nil }), deafLeave, "the bus can no longer start all of its names"},
		{"a rule covers it now",
			view(func(v *deafView) { v.rule = func(watcher.Peer) (string, bool) { return "kga", true } }), deafLeave, "rule kga covers it"},
		{"no new copy, the grace over: a copy in no unit is waited for", view(func(v *deafView) { clear(v.owners); v.overdue = true }),
			deafWait, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, name, owner, why := judgeDeaf(old, tc.view)
			if got != tc.want || why != tc.why {
				t.Errorf("verdict %d %q, want %d %q", got, why, tc.want, tc.why)
			}
			if got == deafStop && (name != "org.kde.kglobalaccel" || owner.PID != newCopy.PID) {
				t.Errorf("replaced as %s by %+v", name, owner)
			}
		})
	}
}

// A copy dbus-broker started in a unit of its own is not waited for: once
// the new bus has been up for the grace without it, it is stopped, under
// the same conditions as a copy whose new one is on the bus.
func TestJudgeDeafBrokerStarted(t *testing.T) {
	const unit = "dbus-:1.2-org.kde.kglobalaccel@0.service"
	old := watcher.Peer{UniqueName: ":1.9", PID: 100, StartTime: 5, Names: []string{"org.kde.kglobalaccel"}, Unit: unit}
	newCopy := watcher.Peer{UniqueName: ":2.3", PID: 200, StartTime: 9, Names: []string{"org.kde.kglobalaccel"},
		Unit: "dbus-:1.2-org.kde.kglobalaccel@1.service"}
	back := old
	back.UniqueName, back.Names = ":2.4", nil // connected, its name not taken yet
	noRule := func(watcher.Peer) (string, bool) { return "", false }
	view := func(f func(v *deafView)) deafView {
		v := deafView{owners: map[string]string{}, peers: map[string]watcher.Peer{},
			activatable: map[string]bool{"org.kde.kglobalaccel": true}, enabled: true, overdue: true, rule: noRule}
		if f != nil {
			f(&v)
		}
		return v
	}
	withNewCopy := func(v *deafView) {
		v.owners["org.kde.kglobalaccel"] = ":2.3"
		v.peers[":2.3"] = newCopy
	}
	for _, tc := range []struct {
		name string
		peer watcher.Peer // old if zero
		view deafView
		want deafVerdict
		why  string
	}{
		{"stayed off the new bus for the grace", watcher.Peer{}, view(nil), deafStopStayedOff, ""},
		{"within the grace", watcher.Peer{}, view(func(v *deafView) { v.overdue = false }), deafWait, ""},
		{"a new copy within the grace", watcher.Peer{}, view(func(v *deafView) { v.overdue = false; withNewCopy(v) }), deafStop, ""},
		{"a new copy after the grace", watcher.Peer{}, view(withNewCopy), deafStop, ""},
		{"back on the bus, without its name", watcher.Peer{}, view(func(v *deafView) { v.peers[":2.4"] = back }), deafBack, ""},
		{"back on the bus with its name",
			watcher.Peer{}, view(func(v *deafView) { v.peers[":2.4"] = old; v.owners["org.kde.kglobalaccel"] = ":2.4" }), deafBack, ""},
		{"paused", watcher.Peer{}, view(func(v *deafView) { v.paused = true }), deafHeld, "recovery is paused"},
		{"turned off", watcher.Peer{}, view(func(v *deafView) { v.enabled = false }), deafLeave, "stop_deaf_services = false"},
		{"no longer activatable", watcher.Peer{}, view(func(v *deafView) { v.activatable = nil }), deafLeave,
			"the bus can no longer start all of its names"},
		{"a rule covers it now",
			watcher.Peer{}, view(func(v *deafView) { v.rule = func(watcher.Peer) (string, bool) { return "kga", true } }), deafLeave,
			"rule kga covers it"},
		{"in no unit", func() watcher.Peer { p := old; p.Unit = ""; return p }(), view(nil), deafWait, ""},
		{"in dbus-broker's unit for another name",
			func() watcher.Peer { p := old; p.Unit = "dbus-:1.2-org.kde.other@0.service"; return p }(), view(nil), deafWait, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.peer
			if p.PID == 0 {
				p = old
			}
			got, name, owner, why := judgeDeaf(p, tc.view)
			if got != tc.want || why != tc.why {
				t.Errorf("verdict %d %q, want %d %q", got, why, tc.want, tc.why)
			}
			switch {
			case got == deafStopStayedOff && (name != "org.kde.kglobalaccel" || owner.PID != 0):
				t.Errorf("stopped for staying off as %s, with owner %+v", name, owner)
			case got == deafStop && (name != "org.kde.kglobalaccel" || owner.PID != newCopy.PID):
				t.Errorf("replaced as %s by %+v", name, owner)
			}
		})
	}
}

func TestReplacedBy(t *testing.T) {
	const bus = "unix:path=/run/user/1000/bus"
	starters := map[int]string{
		10: "unix:path=/run/user/1000/bus,guid=0123456789abcdef0123456789abcdef",
		11: "unix:path=/tmp/other-bus,guid=0123456789abcdef0123456789abcdef",
	}
	starter := func(pid int) string { return starters[pid] }
	for _, tc := range []struct {
		name  string
		owner watcher.Peer
		want  string
	}{
		{"started by this bus", watcher.Peer{PID: 10}, "the bus started a new one (pid 10)"},
		{"started by another bus", watcher.Peer{PID: 11}, "pid 11 owns its name on the new bus"},
		{"started by hand", watcher.Peer{PID: 12}, "pid 12 owns its name on the new bus"},
		{"started by dbus-broker",
			watcher.Peer{PID: 13, Names: []string{"org.kde.kglobalaccel"}, Unit: "dbus-:1.2-org.kde.kglobalaccel@1.service"},
			"the bus started a new one (pid 13)"},
		{"in dbus-broker's unit for another name",
			watcher.Peer{PID: 14, Names: []string{"org.kde.kglobalaccel"}, Unit: "dbus-:1.2-org.kde.other@1.service"},
			"pid 14 owns its name on the new bus"},
		{"in a unit of its own",
			watcher.Peer{PID: 15, Names: []string{"org.kde.kglobalaccel"}, Unit: "plasma-kglobalaccel.service"},
			"pid 15 owns its name on the new bus"},
		{"owner unknown", watcher.Peer{}, "its name has a new owner on the new bus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := replacedBy(tc.owner, bus, starter); got != tc.want {
				t.Errorf("replacedBy = %q, want %q", got, tc.want)
			}
		})
	}
}

// deafBus is a harness whose bus starts org.example.Deaf on demand: a
// testapp that stays alive and deaf when its bus goes.
type deafBus struct {
	*harness
	conn *dbus.Conn // a client that asks for names, as a desktop's programs do
}

const deafName = "org.example.Deaf"

func newDeafBus(t *testing.T, rulesTOML string, opts ...harnessOpt) *deafBus {
	t.Helper()
	return newDeafBusEditing(t, rulesTOML, nil, opts...)
}

// brokerDeafUnit is the unit dbus-broker would start org.example.Deaf in.
const brokerDeafUnit = "dbus-:1.2-org.example.Deaf@0.service"

// newBrokerDeafBus is newDeafBus as dbus-broker under systemd would have
// it: the engine sees every process of org.example.Deaf in the unit
// dbus-broker starts it in (brokerDeafUnit), as test/systemd has it for
// real. The bus is dbus-daemon all the same: what the engine does with
// such a copy depends on its unit, not on which daemon runs the bus.
func newBrokerDeafBus(t *testing.T, rulesTOML string, opts ...harnessOpt) *deafBus {
	t.Helper()
	inUnit := func(p watcher.Peer) watcher.Peer {
		if ownsArg(deafName)(p.Argv) {
			p.Unit = brokerDeafUnit
		}
		return p
	}
	return newDeafBusEditing(t, rulesTOML, func(ev *watcher.Event) {
		// Copies: the watcher keeps what it reported.
		if ev.Peer != nil {
			p := inUnit(*ev.Peer)
			ev.Peer = &p
		}
		ev.Peers = slices.Clone(ev.Peers)
		for i, p := range ev.Peers {
			ev.Peers[i] = inUnit(p)
		}
	}, opts...)
}

func newDeafBusEditing(t *testing.T, rulesTOML string, edit func(*watcher.Event), opts ...harnessOpt) *deafBus {
	t.Helper()
	services := t.TempDir()
	service := "[D-BUS Service]\nName=" + deafName + "\nExec=" + bustest.TestApp(t) + " -mode deaf -name " + deafName + "\n"
	if err := os.WriteFile(filepath.Join(services, deafName+".service"), []byte(service), 0o644); err != nil {
		t.Fatal(err)
	}
	d := &deafBus{harness: newHarnessEditing(t, []bustest.Option{bustest.ServiceDir(services)}, edit, rulesTOML, opts...)}
	// The bus starts the copies, so that no test process waits for them:
	// they are killed here.
	t.Cleanup(func() {
		for _, pid := range d.copies() {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return d
}

// ask calls org.example.Deaf on the bus as it is now, as a program that
// uses the service does: the bus starts a copy unless one runs. It
// returns the pid of the copy that answered.
func (d *deafBus) ask() int {
	d.t.Helper()
	if d.conn == nil || d.conn.Context().Err() != nil {
		conn, err := dbus.Connect(d.bus.Address())
		if err != nil {
			d.t.Fatal(err)
		}
		d.t.Cleanup(func() { conn.Close() })
		d.conn = conn
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := d.conn.Object(deafName, "/").CallWithContext(ctx, "org.freedesktop.DBus.Peer.Ping", 0).Err; err != nil {
		d.t.Fatalf("call %s: %v", deafName, err)
	}
	var pid uint32
	if err := d.conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.GetConnectionUnixProcessID", 0, deafName).Store(&pid); err != nil {
		d.t.Fatal(err)
	}
	// The watcher, too, must have seen the copy with its name, or the
	// next restart's snapshot would not have it as it was.
	d.until(deafName+" owned by pid "+strconv.Itoa(int(pid)), func() bool {
		return d.peers[d.owners[deafName]].PID == int(pid)
	})
	return int(pid)
}

// copies returns the live copies of org.example.Deaf the bus started: the
// processes whose environment names this bus's socket.
func (d *deafBus) copies() []int {
	return d.procs(deafName)
}

// procs returns the live testapps owning name whose environment names
// this bus's socket.
func (d *deafBus) procs(name string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !ownsArg(name)(strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")) {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !strings.Contains(string(env), d.bus.SocketPath()) {
			continue
		}
		if alive(pid, 0) {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return pids
}

// restartWith restarts the bus by stop (Stop or Kill), waits for the
// recovery and returns it.
func (d *deafBus) restartWith(stop func(*bustest.Bus)) control.Recovery {
	d.t.Helper()
	stop(d.bus)
	d.bus.Start()
	return d.waitRecovery(d.waitUp())
}

// waitSettled waits until n possible deaf copies have been settled.
func (d *deafBus) waitSettled(n int64) {
	d.t.Helper()
	d.until("deaf copies settled", func() bool { return d.eng.deafSettled.Load() >= n })
}

// stops returns the stop jobs in the history, oldest first.
func (d *deafBus) stops() []control.Job {
	d.t.Helper()
	var out []control.Job
	for _, r := range slices.Backward(d.history()) {
		for _, j := range r.Jobs {
			if j.Action == "stop" {
				out = append(out, j)
			}
		}
	}
	return out
}

// startTime returns the start time of a live process, for identity checks.
func startTime(t *testing.T, pid int) uint64 {
	t.Helper()
	st, _, err := procStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// exitedWithin waits up to d for the process pid, started at start, to be
// gone: a deaf copy is not our child, so there is no Wait to wait on.
func exitedWithin(pid int, start uint64, d time.Duration) bool {
	p, err := openProcess(pid, start)
	if err != nil {
		return !alive(pid, start)
	}
	defer p.close()
	return p.wait(context.Background(), d)
}

const noRules = `
[[app]]
id = "other"
names = ["org.example.Other"]
`

// The old copy of a service the bus started on demand stays alive and
// deaf after the bus restarts; once the new bus has started a new copy,
// at the first call to the name, busmedic stops the old one and says so
// in the history. A deaf process whose name the bus cannot start is left
// alone, even when a new copy of it takes its name.
func TestDeafCopyStopped(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(*bustest.Bus)
	}{
		{"SIGTERM", (*bustest.Bus).Stop},
		{"SIGKILL", (*bustest.Bus).Kill},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDeafBus(t, noRules)
			old := d.ask()
			oldStart := startTime(t, old)
			stray := d.bus.StartApp("-name", "org.example.Stray", "-mode", "deaf")
			d.waitOwner("org.example.Stray", 0)

			d.restartWith(tc.stop)
			if !alive(old, oldStart) || !alive(stray.PID(), 0) {
				t.Fatal("the deaf apps did not outlive their bus; the test proves nothing")
			}
			// A new copy of the stray takes its name: its old copy is
			// no on-demand service, and stays.
			d.bus.StartApp("-name", "org.example.Stray", "-mode", "deaf")
			d.waitOwner("org.example.Stray", stray.PID())

			settled := d.eng.deafSettled.Load()
			newPID := d.ask()
			if newPID == old {
				t.Fatalf("the old copy (pid %d) answered on the new bus", old)
			}
			d.waitSettled(settled + 1)
			if !exitedWithin(old, oldStart, waitLimit) {
				t.Fatalf("the old copy (pid %d) still runs", old)
			}
			if got := d.copies(); !slices.Equal(got, []int{newPID}) {
				t.Errorf("copies running: %v, want only the new one %d", got, newPID)
			}
			if len(d.procs("org.example.Stray")) != 2 {
				t.Errorf("stray copies %v: the old one, whose name the bus cannot start, must stay", d.procs("org.example.Stray"))
			}
			if n := d.eng.deafSettled.Load(); n != settled+1 {
				t.Errorf("%d deaf copies settled, want 1: only org.example.Deaf's", n-settled)
			}
			stops := d.stops()
			if len(stops) != 1 {
				t.Fatalf("stop jobs in the history: %+v, want one", stops)
			}
			j := stops[0]
			want := "stopped the deaf old copy of org.example.Deaf (pid " + strconv.Itoa(old) + "): the bus started a new one (pid " + strconv.Itoa(newPID) + ")"
			if j.Outcome != control.Stopped || j.PID != old || j.Reason != want || !strings.HasPrefix(j.App, "deaf:testapp:") {
				t.Errorf("history job %+v, want stopped with %q", j, want)
			}
			if st := d.eng.Status(); slices.ContainsFunc(st.Casualties, func(c control.Casualty) bool { return c.Peer.Owns(deafName) }) {
				t.Errorf("casualties %+v: the deaf copy is none", st.Casualties)
			}
		})
	}
}

// A copy left deaf through several restarts, whose name nobody asked for
// in between, is stopped all the same once the bus starts a new one: one
// copy runs afterwards, not one per restart.
func TestDeafCopyThroughRestarts(t *testing.T) {
	d := newDeafBus(t, noRules)
	old := d.ask()
	oldStart := startTime(t, old)
	d.restartWith((*bustest.Bus).Kill)
	d.restartWith((*bustest.Bus).Stop)
	settled := d.eng.deafSettled.Load()
	newPID := d.ask()
	d.waitSettled(settled + 1)
	if !exitedWithin(old, oldStart, waitLimit) {
		t.Fatalf("the old copy (pid %d) still runs", old)
	}
	if got := d.copies(); !slices.Equal(got, []int{newPID}) {
		t.Errorf("copies running: %v, want only %d", got, newPID)
	}
}

// With stop_deaf_services = false the old copy keeps running beside the
// new one.
func TestDeafCopySettingOff(t *testing.T) {
	d := newDeafBus(t, noRules+"\n[settings]\nstop_deaf_services = false\n")
	old := d.ask()
	d.restartWith((*bustest.Bus).Kill)
	settled := d.eng.deafSettled.Load()
	newPID := d.ask()
	d.waitSettled(settled + 1)
	if got := d.copies(); !slices.Equal(got, []int{min(old, newPID), max(old, newPID)}) {
		t.Errorf("copies running: %v, want the old %d and the new %d", got, old, newPID)
	}
	if stops := d.stops(); len(stops) != 0 {
		t.Errorf("stop jobs in the history: %+v", stops)
	}
}

// A deaf copy covered by a rule is the rule's: here it says ignore, and
// the copy stays.
func TestDeafCopyCoveredByRule(t *testing.T) {
	d := newDeafBus(t, `
[[app]]
id = "deaf"
names = ["org.example.Deaf"]
action = "ignore"
`)
	old := d.ask()
	d.restartWith((*bustest.Bus).Kill)
	newPID := d.ask()
	// Candidates are taken before the recovery's jobs run, so by its end:
	// the copy is none, and nothing will stop it.
	if got := d.copies(); !slices.Equal(got, []int{min(old, newPID), max(old, newPID)}) {
		t.Errorf("copies running: %v, want the old %d and the new %d", got, old, newPID)
	}
	d.eng.mu.Lock()
	n := len(d.eng.bus("session").deaf)
	d.eng.mu.Unlock()
	if n != 0 || d.eng.deafSettled.Load() != 0 {
		t.Errorf("%d candidates, %d settled: a copy a rule covers is no candidate", n, d.eng.deafSettled.Load())
	}
}

// A process that is not the one seen on the bus (its pid reused: here the
// recorded start time is made to differ) is never signalled.
func TestDeafCopyPIDReused(t *testing.T) {
	d := newDeafBus(t, noRules)
	old := d.ask()
	oldStart := startTime(t, old)
	d.restartWith((*bustest.Bus).Kill)
	d.eng.mu.Lock()
	p, ok := d.eng.bus("session").deaf[old]
	if ok {
		p.StartTime++
		d.eng.bus("session").deaf[old] = p
	}
	d.eng.mu.Unlock()
	if !ok {
		t.Fatalf("the old copy (pid %d) is no candidate", old)
	}
	settled := d.eng.deafSettled.Load()
	d.ask()
	d.waitSettled(settled + 1)
	if !alive(old, oldStart) {
		t.Fatalf("pid %d was stopped although its start time differs from the one seen", old)
	}
	if stops := d.stops(); len(stops) != 0 {
		t.Errorf("stop jobs in the history: %+v", stops)
	}
}

// The identity check holds for a process the engine never saw on a bus:
// stopDeafCopy refuses a live process whose start time is not the
// recorded one.
func TestStopDeafCopyChecksIdentity(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	e := New(Config{Logger: testLogger(t), StateDir: t.TempDir()})
	start := startTime(t, cmd.Process.Pid)
	p := watcher.Peer{PID: cmd.Process.Pid, StartTime: start + 1, UID: currentUID(), Argv: []string{"sleep"}}
	if j := e.stopDeafCopy(t.Context(), deafRestart{bus: "session"}, deafStopping{peer: p, name: deafName}); j != nil {
		t.Errorf("job %+v for a process that is not the one seen", j)
	}
	// stopDeafCopy returns once a signalled process has exited: a zombie
	// by now, which alive does not count.
	if !alive(cmd.Process.Pid, start) {
		t.Fatal("the process was signalled")
	}
}

// deafGrace sets the grace of the deaf copies dbus-broker started.
func deafGrace(d time.Duration) harnessOpt {
	return func(c *Config, _ *bustest.Bus) { c.deafGrace = d }
}

// deafTimer reports whether a timer runs to judge the session bus's deaf
// copies again once their grace is over.
func (d *deafBus) deafTimer() bool {
	d.eng.mu.Lock()
	defer d.eng.mu.Unlock()
	return d.eng.bus("session").deafTimer != nil
}

// candidate reports whether pid is a possible deaf copy on the session bus.
func (d *deafBus) candidate(pid int) bool {
	d.eng.mu.Lock()
	defer d.eng.mu.Unlock()
	_, ok := d.eng.bus("session").deaf[pid]
	return ok
}

// Under dbus-broker the old copy of an on-demand service runs in a unit
// whose name the new bus gives the unit of the new copy, and systemd
// refuses that while the old unit runs: the first call after the restart
// would fail. So busmedic does not wait for a call to start a new copy:
// once the new bus has been up for the grace without the old copy, it
// stops it and says why in the history. The next call starts the new
// copy, the only one.
func TestDeafBrokerCopyStoppedWithoutCall(t *testing.T) {
	const grace = 300 * time.Millisecond
	d := newBrokerDeafBus(t, noRules, deafGrace(grace))
	old := d.ask()
	oldStart := startTime(t, old)
	d.mu.Lock()
	unit := d.peers[d.owners[deafName]].Unit
	d.mu.Unlock()
	if unit != brokerDeafUnit {
		t.Fatalf("the engine sees the copy in unit %q, not in dbus-broker's", unit)
	}
	settled := d.eng.deafSettled.Load()
	d.restartWith((*bustest.Bus).Kill)
	d.waitSettled(settled + 1)
	if !exitedWithin(old, oldStart, waitLimit) {
		t.Fatalf("the old copy (pid %d) still runs", old)
	}
	if got := d.copies(); len(got) != 0 {
		t.Errorf("copies running: %v; nobody called the service, so none should", got)
	}
	hist := d.history()
	var rec control.Recovery
	for _, r := range hist {
		if slices.ContainsFunc(r.Jobs, func(j control.Job) bool { return j.Action == "stop" }) {
			rec = r
			break
		}
	}
	if len(rec.Jobs) != 1 {
		t.Fatalf("history %+v, want one record with one stop", hist)
	}
	j := rec.Jobs[0]
	want := "stopped the deaf old copy of org.example.Deaf (pid " + strconv.Itoa(old) +
		"): it stayed off the new bus for 300ms; dbus-broker would fail to start a new copy while its unit runs"
	if j.Outcome != control.Stopped || j.PID != old || j.Reason != want || !strings.HasPrefix(j.App, "deaf:testapp:") {
		t.Errorf("history job %+v, want stopped with %q", j, want)
	}
	if !strings.Contains(rec.Decision, "stayed off the new bus for 300ms") {
		t.Errorf("decision %q", rec.Decision)
	}
	// rec.Started is when the bus came back.
	if waited := j.Started.Sub(rec.Started); waited < grace {
		t.Errorf("stopped %s after the bus came back, before the grace of %s was over", waited, grace)
	}
	newPID := d.ask()
	if got := d.copies(); !slices.Equal(got, []int{newPID}) {
		t.Errorf("copies running: %v, want only the new one %d", got, newPID)
	}
	if stops := d.stops(); len(stops) != 1 {
		t.Errorf("stop jobs in the history: %+v, want the old copy's only", stops)
	}
}

// A copy in dbus-broker's unit that comes back on the new bus is no deaf
// copy, and stays.
func TestDeafBrokerCopyBack(t *testing.T) {
	// The default grace: the copy must be back within it.
	d := newBrokerDeafBus(t, noRules)
	app := d.bus.StartApp("-name", deafName, "-mode", "reconnect")
	d.waitOwner(deafName, 0)
	settled := d.eng.deafSettled.Load()
	d.restartWith((*bustest.Bus).Kill)
	d.waitOwner(deafName, 0)
	d.waitSettled(settled + 1)
	// The grace runs out with nothing left to judge.
	d.until("the timer of the deaf copies ended", func() bool { return !d.deafTimer() })
	if !alive(app.PID(), 0) {
		t.Fatalf("the copy that came back (pid %d) was stopped", app.PID())
	}
	if pid := d.owner(deafName); pid != app.PID() {
		t.Errorf("%s owned by pid %d, want the copy that came back, %d", deafName, pid, app.PID())
	}
	if stops := d.stops(); len(stops) != 0 {
		t.Errorf("stop jobs in the history: %+v", stops)
	}
}

// A pause holds the stop of a copy that stayed off the bus, until Resume.
func TestDeafBrokerCopyHeldWhilePaused(t *testing.T) {
	d := newBrokerDeafBus(t, noRules, deafGrace(100*time.Millisecond))
	old := d.ask()
	oldStart := startTime(t, old)
	d.eng.Pause()
	held := d.eng.deafHeld.Load()
	d.restartWith((*bustest.Bus).Kill)
	d.until("the deaf copy held", func() bool { return d.eng.deafHeld.Load() > held })
	if !alive(old, oldStart) {
		t.Fatalf("the old copy (pid %d) was stopped while paused", old)
	}
	if !d.candidate(old) || d.eng.deafSettled.Load() != 0 {
		t.Fatal("the pause dropped the deaf copy instead of holding its stop")
	}
	d.eng.Resume()
	d.waitSettled(1)
	if !exitedWithin(old, oldStart, waitLimit) {
		t.Fatalf("the old copy (pid %d) still runs after Resume", old)
	}
	if stops := d.stops(); len(stops) != 1 || stops[0].Outcome != control.Stopped || stops[0].PID != old {
		t.Errorf("stop jobs in the history: %+v, want the old copy stopped", stops)
	}
}

// With stop_deaf_services = false the copy that stayed off stays.
func TestDeafBrokerCopySettingOff(t *testing.T) {
	d := newBrokerDeafBus(t, noRules+"\n[settings]\nstop_deaf_services = false\n", deafGrace(100*time.Millisecond))
	old := d.ask()
	oldStart := startTime(t, old)
	settled := d.eng.deafSettled.Load()
	d.restartWith((*bustest.Bus).Kill)
	d.waitSettled(settled + 1)
	if !alive(old, oldStart) {
		t.Fatalf("the old copy (pid %d) was stopped", old)
	}
	if stops := d.stops(); len(stops) != 0 {
		t.Errorf("stop jobs in the history: %+v", stops)
	}
}

// The timer of a grace ends when the bus goes down again, and the copy
// stays a candidate, judged on the next bus instance with a grace of its
// own. (It ends with the engine too: the grace here is an hour, and the
// harness waits for Run to return.)
func TestDeafBrokerTimerEndsWithBus(t *testing.T) {
	d := newBrokerDeafBus(t, noRules, deafGrace(time.Hour))
	old := d.ask()
	oldStart := startTime(t, old)
	d.restartWith((*bustest.Bus).Kill)
	d.until("a timer for the deaf copy", d.deafTimer)
	d.bus.Kill()
	d.until("the timer ended with the bus", func() bool { return !d.deafTimer() })
	if !alive(old, oldStart) || !d.candidate(old) {
		t.Fatalf("the old copy (pid %d): alive %v, candidate %v; want both", old, alive(old, oldStart), d.candidate(old))
	}
	d.bus.Start()
	d.waitRecovery(d.waitUp())
	d.until("a timer for the deaf copy on the new bus", d.deafTimer)
	if stops := d.stops(); len(stops) != 0 {
		t.Errorf("stop jobs in the history: %+v", stops)
	}
}

// A program the user started that owns only a name the bus could start
// (an app with a service file of its own, open in its window) is not a
// copy the bus started: when the bus starts a new copy for its name after
// a restart, the deaf program started by hand is left alone.
func TestDeafCopyStartedByHandLeftAlone(t *testing.T) {
	d := newDeafBus(t, noRules)
	byHand := d.bus.StartApp("-name", deafName, "-mode", "deaf")
	d.waitOwner(deafName, 0)
	d.restartWith((*bustest.Bus).Stop)
	if !alive(byHand.PID(), 0) {
		t.Fatal("the app started by hand did not outlive its bus; the test proves nothing")
	}
	if pid := d.ask(); pid == byHand.PID() {
		t.Fatal("the app started by hand answered on the new bus; the test proves nothing")
	}
	// The restart's peers were judged when the bus came back, before the
	// recovery ended.
	d.eng.mu.Lock()
	_, candidate := d.eng.buses["session"].deaf[byHand.PID()]
	d.eng.mu.Unlock()
	if candidate {
		t.Error("the app started by hand is kept as a deaf copy to stop once a new copy owns its name")
	}
	if !alive(byHand.PID(), 0) {
		t.Error("the app started by hand was stopped")
	}
}

func TestStartedByBus(t *testing.T) {
	const bus = "unix:path=/run/user/1000/bus"
	starters := map[int]string{
		1: "unix:path=/run/user/1000/bus,guid=0123",
		2: "unix:path=/tmp/other-bus,guid=4567",
	}
	starter := func(pid int) string { return starters[pid] }
	for _, tc := range []struct {
		name    string
		peer    watcher.Peer
		address string
		want    bool
	}{
		{"started by this bus (dbus-daemon)", watcher.Peer{PID: 1}, bus, true},
		{"started by this bus, its address with a guid", watcher.Peer{PID: 1}, bus + ",guid=89ab", true},
		{"started by another bus", watcher.Peer{PID: 2}, bus, false},
		{"started by hand", watcher.Peer{PID: 3}, bus, false},
		{"bus address unknown", watcher.Peer{PID: 1}, "", false},
		{"in the unit dbus-broker started it in", watcher.Peer{PID: 3, Names: []string{"org.kde.kglobalaccel"},
			Unit: "dbus-:1.2-org.kde.kglobalaccel@0.service"}, bus, true},
	} {
		if got := startedByBus(tc.peer, tc.address, starter); got != tc.want {
			t.Errorf("%s: startedByBus = %v, want %v", tc.name, got, tc.want)
		}
	}
}
