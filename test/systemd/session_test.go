// Package systemd tests busmedic in a real systemd session: systemd as PID 1
// in a container, the user's manager with its socket-activated session bus
// (dbus-daemon or dbus-broker), apps in user units, busmedic in its own
// unit. The container comes from test/systemdtest.
package systemd

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"busmedic/relaunch/control"
	"busmedic/test/systemdtest"
)

// gdbusOwner is a small GDBus service: it owns the name given as its
// argument until its bus goes, when GDBus raises SIGTERM on it.
const gdbusOwner = `import sys
from gi.repository import Gio, GLib
Gio.bus_own_name(Gio.BusType.SESSION, sys.argv[1], Gio.BusNameOwnerFlags.NONE, None, None, None)
GLib.MainLoop().run()
`

// app is one app of the session: a user unit that owns a bus name.
type app struct {
	unit, name, text string
	// outlives: its process stays alive, deaf, when the bus goes, and
	// systemd does not stop its unit; busmedic waits out the rule's grace
	// (the app might reconnect by itself) before it restarts the unit.
	outlives bool
	// grace, if set, is the app's own grace in the rules, over the one
	// all rules get.
	grace string
}

// sessionApps are the kinds of app a systemd session has: a libdbus service
// in a Type=simple unit (it exits 1 when the bus goes), the same in
// Type=dbus units (systemd stops such a unit when its name vanishes, unless
// the process exits first), one of them with Restart=on-failure (systemd
// brings it back by itself), a program that stays alive but deaf, as Qt
// programs do, in a Type=dbus unit (systemd stops it) and in a Type=simple
// one (busmedic must have systemd restart it), and a GDBus service.
var sessionApps = []app{
	{unit: "echo-simple.service", name: "org.busmedic.test.Simple", text: `[Service]
Type=simple
ExecStart=/usr/bin/dbus-test-tool echo --name=org.busmedic.test.Simple
`},
	{unit: "echo-dbus.service", name: "org.busmedic.test.Dbus", text: `[Service]
Type=dbus
BusName=org.busmedic.test.Dbus
ExecStart=/usr/bin/dbus-test-tool echo --name=org.busmedic.test.Dbus
`},
	{unit: "echo-restart.service", name: "org.busmedic.test.Restart", text: `[Service]
Type=dbus
BusName=org.busmedic.test.Restart
ExecStart=/usr/bin/dbus-test-tool echo --name=org.busmedic.test.Restart
Restart=on-failure
`},
	{unit: "deaf-dbus.service", name: "org.busmedic.test.DeafDbus", text: `[Service]
Type=dbus
BusName=org.busmedic.test.DeafDbus
ExecStart=/usr/local/bin/testapp -mode deaf -name org.busmedic.test.DeafDbus
`},
	{unit: "deaf-simple.service", name: "org.busmedic.test.Deaf", outlives: true, text: `[Service]
Type=simple
ExecStart=/usr/local/bin/testapp -mode deaf -name org.busmedic.test.Deaf
`},
	{unit: "gdbus-owner.service", name: "org.busmedic.test.GDBus", text: `[Service]
Type=simple
ExecStart=/usr/bin/python3 /home/tester/gdbus-owner.py org.busmedic.test.GDBus
`},
}

// rulesFor is a rules file with one relaunch rule per app, with the given
// grace ("" leaves the key out: the default). The rules name the bus name
// only: busmedic finds the unit from the process's cgroup, except for the
// first app, whose rule names its unit as "rules add-from-pid" writes it.
func rulesFor(apps []app, grace string) string {
	var b strings.Builder
	for i, a := range apps {
		fmt.Fprintf(&b, "[[app]]\nid = %q\nnames = [%q]\naction = \"relaunch\"\n",
			strings.TrimSuffix(a.unit, ".service"), a.name)
		if g := cmp.Or(a.grace, grace); g != "" {
			fmt.Fprintf(&b, "grace = %q\n", g)
		}
		if i == 0 {
			fmt.Fprintf(&b, "unit = %q\n", a.unit)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// session is a booted container with busmedic and the apps running.
type session struct {
	t    testing.TB
	m    *systemdtest.Machine
	apps []app
}

// sessionOptions are what differs between the sessions of the test and
// of the benchmark.
type sessionOptions struct {
	// grace is the rules' grace; "" leaves it out (the default).
	grace string
	// binds are more programs for the container, beside testapp.
	binds map[string]string
}

// startSession boots a container with the given session bus, starts the
// apps in their units and busmedic in busmedic.service, and waits until
// busmedic sees every app on the bus.
func startSession(t testing.TB, userBus systemdtest.Bus, apps []app, opts sessionOptions) *session {
	t.Helper()
	binds := map[string]string{"/usr/local/bin/testapp": systemdtest.Build(t, "busmedic/watcher/bustest/testapp")}
	maps.Copy(binds, opts.binds)
	m := systemdtest.Boot(t, systemdtest.Options{UserBus: userBus, Binds: binds})
	s := &session{t: t, m: m, apps: apps}
	m.User.WriteFile("gdbus-owner.py", []byte(gdbusOwner), 0o644)
	m.User.WriteFile(".config/busmedic/apps.toml", []byte(rulesFor(apps, opts.grace)), 0o644)
	for _, a := range apps {
		m.User.WriteUnit(a.unit, a.text)
	}
	for _, a := range apps {
		m.User.Run("systemctl", "--user", "start", a.unit)
	}
	m.User.StartUnit("busmedic.service", nil, systemdtest.BusmedicPath, "run", "--no-tray")
	s.waitStatus(30*time.Second, "busmedic sees every app running", func(st control.Status) bool {
		return s.allRunning(st)
	})
	for _, a := range apps {
		s.wantInUnit(a)
	}
	return s
}

// status is "busmedic status --json" as the user, or false while the
// daemon does not answer yet.
func (s *session) status() (control.Status, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := s.m.User.Command(ctx, systemdtest.BusmedicPath, "status", "--json").Output()
	if err != nil {
		return control.Status{}, false
	}
	var st control.Status
	if err := json.Unmarshal(out, &st); err != nil {
		s.t.Fatalf("busmedic status --json: %v\n%s", err, out)
	}
	return st, true
}

// waitStatus waits until cond holds for busmedic's status, as a user
// watching "busmedic status --follow" would (which also waits for a
// busmedic not yet answering), until the deadline.
func (s *session) waitStatus(timeout time.Duration, what string, cond func(control.Status) bool) control.Status {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := s.m.User.Command(ctx, systemdtest.BusmedicPath, "status", "--follow", "--json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		s.t.Fatalf("busmedic status --follow: %v", err)
	}
	var last control.Status
	seen, held := false, false
	lines := bufio.NewScanner(out)
	lines.Buffer(nil, 1<<20)
	for !held && lines.Scan() {
		var st control.Status
		if err := json.Unmarshal(lines.Bytes(), &st); err != nil {
			s.t.Errorf("busmedic status --follow --json: %v\n%s", err, lines.Bytes())
			break
		}
		last, seen, held = st, true, cond(st)
	}
	cancel() // the deadline, or the command is no longer needed
	cmd.Wait()
	if held {
		return last
	}
	j, _ := json.MarshalIndent(last, "", "  ")
	s.t.Fatalf("%s: not within %s (status answered: %v)\nlast status: %s\nbusmedic status --follow said: %s\nbusmedic's journal:\n%s", what, timeout, seen, j, stderr.Bytes(),
		s.m.User.Run("journalctl", "--user", "-u", "busmedic.service", "--no-pager", "-n", "60"))
	return last
}

func (s *session) allRunning(st control.Status) bool {
	if !bus(st, "session").Up {
		return false
	}
	for _, a := range s.apps {
		i := indexApp(st, strings.TrimSuffix(a.unit, ".service"))
		if i < 0 || !st.Apps[i].Running {
			return false
		}
	}
	return true
}

// bus is the named bus in st, or a bus that is down.
func bus(st control.Status, name string) control.BusStatus {
	for _, b := range st.Buses {
		if b.Name == name {
			return b
		}
	}
	return control.BusStatus{Name: name}
}

func indexApp(st control.Status, id string) int {
	for i, a := range st.Apps {
		if a.ID == id {
			return i
		}
	}
	return -1
}

// owner returns the pid that owns name on the session bus, or 0.
func (s *session) owner(name string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := s.m.User.Command(ctx, "gdbus", "call", "--session", "--dest", "org.freedesktop.DBus",
		"--object-path", "/org/freedesktop/DBus", "--method", "org.freedesktop.DBus.GetConnectionUnixProcessID", name).Output()
	if err != nil {
		return 0
	}
	m := regexp.MustCompile(`uint32 (\d+)`).FindSubmatch(out)
	if m == nil {
		return 0
	}
	pid, _ := strconv.Atoi(string(m[1]))
	return pid
}

// wantInUnit checks that the app's name is owned by its unit's main
// process, and that only one process of the app runs: it is back in its
// own unit, not in busmedic's, and not twice.
func (s *session) wantInUnit(a app) systemdtest.UnitState {
	s.t.Helper()
	u := s.m.User.Unit(a.unit)
	if !u.Running() {
		s.t.Errorf("%s: %s", a.unit, u)
		return u
	}
	if pid := s.owner(a.name); pid != u.MainPID {
		s.t.Errorf("%s is owned by pid %d, not by %s's main pid %d", a.name, pid, a.unit, u.MainPID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, _ := s.m.User.Command(ctx, "pgrep", "-f", "-u", strconv.Itoa(systemdtest.UID), a.name+"$").Output()
	if n := len(strings.Fields(string(out))); n != 1 {
		s.t.Errorf("%d processes own or want %s, want 1:\n%s", n, a.name,
			s.m.User.Run("ps", "-o", "pid,ppid,unit,args", "-u", systemdtest.User))
	}
	return u
}

// restart restarts the session bus in one of the ways a user or an update
// does, and returns when the order was given.
type restart struct {
	name string
	do   func(s *session)
}

var restarts = []restart{
	{"busmedic restart-bus", func(s *session) { s.m.User.Run(systemdtest.BusmedicPath, "restart-bus") }},
	{"systemctl --user restart dbus", func(s *session) { s.m.User.Run("systemctl", "--user", "restart", "dbus.service") }},
}

// TestAppsInUnitsComeBack restarts the session bus of a systemd session,
// for both bus implementations and both ways to restart it, and checks
// what a user would: every app is back exactly once, in its own unit;
// busmedic is still the same process and lists no casualty.
func TestAppsInUnitsComeBack(t *testing.T) {
	for _, impl := range []systemdtest.Bus{systemdtest.Daemon, systemdtest.Broker} {
		t.Run(string(impl), func(t *testing.T) {
			s := startSession(t, impl, sessionApps, sessionOptions{grace: "1s"})
			// A rule made from a running app names the unit it runs in.
			deaf := s.m.User.Unit("deaf-simple.service")
			out := s.m.User.Run(systemdtest.BusmedicPath, "rules", "--config", "/tmp/learned.toml",
				"add-from-pid", strconv.Itoa(deaf.MainPID))
			if !strings.Contains(out, `unit = "deaf-simple.service"`) {
				t.Errorf("busmedic rules add-from-pid %d wrote no unit:\n%s", deaf.MainPID, out)
			}
			for _, r := range restarts {
				t.Run(r.name, func(t *testing.T) {
					s.t = t
					before := map[string]systemdtest.UnitState{}
					for _, a := range s.apps {
						before[a.unit] = s.m.User.Unit(a.unit)
					}
					self := s.m.User.Unit("busmedic.service")
					st, _ := s.status()
					oldID := bus(st, "session").ID

					r.do(s)

					st = s.waitStatus(30*time.Second, "every app back after "+r.name, func(st control.Status) bool {
						b := bus(st, "session")
						return b.Up && b.ID != oldID && st.LastRecovery != nil && st.LastRecovery.ID == b.ID && !st.LastRecovery.Ended.IsZero() && s.allRunning(st)
					})
					for _, a := range s.apps {
						u := s.wantInUnit(a)
						if u.MainPID == before[a.unit].MainPID {
							t.Errorf("%s: main pid %d is the one from before the restart", a.unit, u.MainPID)
						}
					}
					for _, j := range st.LastRecovery.Jobs {
						if !j.Outcome.Recovered() {
							t.Errorf("job %s: %s (%s)", j.App, j.Outcome, j.Reason)
						}
						t.Logf("%s: %s %s", j.App, j.Outcome, j.Reason)
					}
					if len(st.Casualties) > 0 {
						t.Errorf("casualties listed after the recovery: %+v", st.Casualties)
					}
					if now := s.m.User.Unit("busmedic.service"); !now.Running() || now.MainPID != self.MainPID {
						t.Errorf("busmedic.service was %s, is %s", self, now)
					}
				})
			}
		})
	}
}
