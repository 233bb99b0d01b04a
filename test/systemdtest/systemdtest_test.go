package systemdtest_test

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"busmedic/test/systemdtest"
)

// exe returns the program a process of the container runs.
func exe(t *testing.T, m *systemdtest.Machine, pid int) string {
	t.Helper()
	if pid == 0 {
		t.Fatal("no main pid")
	}
	return m.Root.Run("readlink", fmt.Sprintf("/proc/%d/exe", pid))
}

// busID asks the user's session bus for its id: a new bus instance has a
// new one.
func busID(t *testing.T, m *systemdtest.Machine) string {
	t.Helper()
	out := m.User.Run("busctl", "--user", "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetId")
	id, ok := strings.CutPrefix(out, "s ")
	if !ok {
		t.Fatalf("GetId: %q", out)
	}
	return strings.Trim(id, `"`)
}

// managerVersion asks the user manager for its version over its private
// socket, a direct connection without the bus, as busmedic does to restart
// the bus. (The manager leaves a call without a destination unanswered,
// even there.)
func managerVersion(t *testing.T, m *systemdtest.Machine) string {
	t.Helper()
	return m.User.Run("dbus-send", "--peer=unix:path=/run/user/1000/systemd/private", "--print-reply=literal",
		"--dest=org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.DBus.Properties.Get",
		"string:org.freedesktop.systemd1.Manager", "string:Version")
}

// TestBoot boots a container with each session bus implementation, side
// by side, and restarts the session bus as a user does.
func TestBoot(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		bus                systemdtest.Bus
		unit, exe, sysUnit string
	}{
		{systemdtest.Daemon, "dbus.service", "/usr/bin/dbus-daemon", "dbus-broker.service"},
		{systemdtest.Broker, "dbus-broker.service", "/usr/bin/dbus-broker-launch", "dbus.service"},
	} {
		t.Run(string(c.bus), func(t *testing.T) {
			t.Parallel()
			// The system bus is the other implementation: both choices
			// are the test's.
			sys := systemdtest.Broker
			if c.bus == systemdtest.Broker {
				sys = systemdtest.Daemon
			}
			m := systemdtest.Boot(t, systemdtest.Options{UserBus: c.bus, SystemBus: sys})

			before := busID(t, m) // the first call activates the bus
			s := m.User.Unit("dbus.service")
			if !s.Running() || s.ID != c.unit {
				t.Fatalf("session bus: %v, want %s running", s, c.unit)
			}
			if got := exe(t, m, s.MainPID); got != c.exe {
				t.Errorf("session bus runs %s, want %s", got, c.exe)
			}
			if sys := m.Root.Unit("dbus.service"); !sys.Running() || sys.ID != c.sysUnit {
				t.Errorf("system bus: %v, want %s running", sys, c.sysUnit)
			}
			if v := managerVersion(t, m); !strings.Contains(v, "252") {
				t.Errorf("user manager version over its private socket: %q", v)
			}

			m.User.Run("systemctl", "--user", "restart", "dbus.service")
			after := busID(t, m)
			if after == before {
				t.Errorf("bus id %s after the restart, as before", after)
			}
			s2 := m.User.Unit("dbus.service")
			if !s2.Running() || s2.MainPID == s.MainPID {
				t.Errorf("session bus after the restart: %v (before: pid %d)", s2, s.MainPID)
			}
			managerVersion(t, m)
			// The user manager is back on the new bus.
			m.User.Run("busctl", "--user", "status", "org.freedesktop.systemd1")
		})
	}
}

// TestUnits runs programs in user units and reads their states and
// journal lines, as the integration tests do.
func TestUnits(t *testing.T) {
	t.Parallel()
	m := systemdtest.Boot(t, systemdtest.Options{})
	start := time.Now()

	// A transient unit that logs at two priorities.
	m.User.StartUnit("talker.service", []string{"Description=talks"},
		"sh", "-c", `echo "<4>careful now"; echo plain; exec sleep infinity`)
	warn := m.User.WaitJournal("talker.service", `^careful`, start, 10*time.Second)
	if warn.Priority != 4 || warn.Unit != "talker.service" {
		t.Errorf("warning line: %v", warn)
	}
	m.User.WaitJournal("talker.service", `^plain$`, start, 10*time.Second)
	var plain []systemdtest.Entry
	for _, e := range m.User.Journal("talker.service") {
		if e.Message == "plain" {
			plain = append(plain, e)
		}
	}
	if len(plain) != 1 || plain[0].Priority != 6 {
		t.Errorf("plain lines: %v", plain)
	}
	talker := m.User.WaitUnit("talker.service", 5*time.Second, systemdtest.UnitState.Running)

	// A unit file: a libdbus service that owns a name, Type=dbus. It
	// ends with the bus: the service exits with status 1 when it loses
	// its connection, or systemd stops the unit when its name goes,
	// whichever comes first.
	m.User.WriteUnit("echo.service", "[Service]\nType=dbus\nBusName=org.example.Echo\n"+
		"ExecStart=/usr/bin/dbus-test-tool echo --name=org.example.Echo\n")
	m.User.Run("systemctl", "--user", "start", "echo.service")
	echo := m.User.Unit("echo.service")
	if !echo.Running() {
		t.Fatalf("echo.service: %v", echo)
	}
	out := m.User.Run("busctl", "--user", "status", "org.example.Echo")
	if !slices.Contains(strings.Split(out, "\n"), "PID="+strconv.Itoa(echo.MainPID)) {
		t.Errorf("org.example.Echo is not owned by echo.service's pid %d:\n%s", echo.MainPID, out)
	}
	restart := time.Now()
	m.User.Run("systemctl", "--user", "restart", "dbus.service")
	m.User.WaitUnit("echo.service", 10*time.Second, systemdtest.UnitState.Stopped)
	m.User.WaitJournal("echo.service", `Failed with result|Deactivated successfully`, restart, 10*time.Second)

	// The transient unit's sh has no bus: it runs on.
	if s := m.User.Unit("talker.service"); !s.Running() || s.MainPID != talker.MainPID {
		t.Errorf("talker.service after the bus restart: %v", s)
	}

	// Root writes files and reads the system manager.
	m.Root.WriteFile("/etc/busmedic-test", []byte("hello\n"), 0o600)
	if got := m.Root.Run("stat", "-c", "%a %U %s", "/etc/busmedic-test"); got != "600 root 6" {
		t.Errorf("root's file: %s", got)
	}
	m.User.WriteFile("notes/a", []byte("x"), 0o644)
	if got := m.User.Run("stat", "-c", "%a %U", "/home/tester/notes/a", "/home/tester/notes"); got != "644 tester\n755 tester" {
		t.Errorf("the user's file and directory: %q", got)
	}
	if s := m.Root.Unit("systemd-logind.service"); !s.Running() {
		t.Errorf("logind: %v", s)
	}
}
