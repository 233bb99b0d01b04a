package systemd

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"busmedic/relaunch/control"
	"busmedic/test/systemdtest"
)

// sysEcho is a libdbus client of the system bus in a user unit: it
// exits when the system bus goes, and a rule for the system bus brings it
// back.
var sysEcho = app{unit: "sysecho.service", text: `[Service]
Type=simple
ExecStart=/usr/bin/dbus-test-tool echo --system
`}

const sysEchoRule = `[[app]]
id = "sysecho"
bus = "system"
cmdline = "*dbus-test-tool echo --system"
action = "relaunch"
grace = "1s"
`

// readmePolkitRule is the polkit rule the README gives administrators,
// taken from the README itself so that the test checks what users copy.
func readmePolkitRule(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```js\n(polkit\\.addRule.*?)```").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no polkit rule (a ```js block with polkit.addRule)")
	}
	return string(m[1])
}

// systemBusID is the system bus's instance id, or "" while it is down.
func systemBusID(m *systemdtest.Machine) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := m.User.Command(ctx, "gdbus", "call", "--system", "--dest", "org.freedesktop.DBus",
		"--object-path", "/org/freedesktop/DBus", "--method", "org.freedesktop.DBus.GetId").Output()
	if err != nil {
		return ""
	}
	return strings.Trim(strings.TrimSpace(string(out)), "(',)")
}

// TestSystemBus restarts the system bus as an update does and as a user of
// busmedic does: a rule for the system bus brings its app back after
// "systemctl restart dbus"; "busmedic restart-bus system" is refused by
// polkit, and busmedic says so, until the README's polkit rule lets the
// user's group restart the bus without a password.
func TestSystemBus(t *testing.T) {
	for _, impl := range []systemdtest.Bus{systemdtest.Daemon, systemdtest.Broker} {
		t.Run(string(impl), func(t *testing.T) { testSystemBus(t, impl) })
	}
}

func testSystemBus(t *testing.T, impl systemdtest.Bus) {
	m := systemdtest.Boot(t, systemdtest.Options{SystemBus: impl})
	m.User.WriteFile(".config/busmedic/apps.toml", []byte(sysEchoRule), 0o644)
	m.User.WriteUnit(sysEcho.unit, sysEcho.text)
	m.User.Run("systemctl", "--user", "start", sysEcho.unit)
	m.User.StartUnit("busmedic.service", nil, systemdtest.BusmedicPath, "run", "--no-tray")
	s := &session{t: t, m: m}
	appRunning := func(st control.Status) bool {
		i := indexApp(st, "sysecho")
		return bus(st, "system").Up && i >= 0 && st.Apps[i].Running
	}
	s.waitStatus(30*time.Second, "busmedic sees sysecho on the system bus", appRunning)

	// recovered waits for a recovery of the system bus other than old's
	// that brought sysecho back in its own unit.
	recovered := func(t *testing.T, oldID string, before systemdtest.UnitState) {
		t.Helper()
		s.t = t
		st := s.waitStatus(30*time.Second, "sysecho back after the system bus restart", func(st control.Status) bool {
			r := st.LastRecovery
			id := bus(st, "system").ID
			return appRunning(st) && id != oldID && r != nil && r.Bus == "system" && r.ID == id && !r.Ended.IsZero()
		})
		for _, j := range st.LastRecovery.Jobs {
			if j.App == "sysecho" && !j.Outcome.Recovered() {
				t.Errorf("sysecho: %s (%s)", j.Outcome, j.Reason)
			}
		}
		u := m.User.WaitUnit(sysEcho.unit, 10*time.Second, systemdtest.UnitState.Running)
		if u.MainPID == before.MainPID {
			t.Errorf("%s still has pid %d from before the restart", sysEcho.unit, u.MainPID)
		}
	}

	t.Run("systemctl restart dbus", func(t *testing.T) {
		old, before := systemBusID(m), m.User.Unit(sysEcho.unit)
		m.Root.Run("systemctl", "restart", "dbus.service")
		recovered(t, old, before)
	})

	t.Run("restart-bus system without a polkit rule", func(t *testing.T) {
		s.t = t
		old := systemBusID(m)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := m.User.Command(ctx, systemdtest.BusmedicPath, "restart-bus", "system").CombinedOutput()
		if err == nil {
			t.Fatalf("busmedic restart-bus system succeeded without a polkit rule:\n%s", out)
		}
		t.Logf("busmedic restart-bus system: %s", out)
		// polkit refuses an unprivileged user without an agent to ask the
		// password; busmedic tells which and how to do it by hand.
		if !regexp.MustCompile(`polkit|not allowed|authoris`).Match(out) || !strings.Contains(string(out), "systemctl restart dbus") {
			t.Errorf("busmedic restart-bus system says:\n%s\nwant the refusal and how to restart by hand", out)
		}
		if now := systemBusID(m); now != old {
			t.Errorf("the system bus restarted (id %s -> %s) although polkit refused", old, now)
		}
	})

	t.Run("restart-bus system with the README's polkit rule", func(t *testing.T) {
		m.Root.WriteFile("/etc/polkit-1/rules.d/50-busmedic.rules", []byte(readmePolkitRule(t)), 0o644)
		// polkitd reads the rules directory again when it changes; restart
		// it so that the test does not race its file watch.
		m.Root.Run("systemctl", "restart", "polkit.service")
		old, before := systemBusID(m), m.User.Unit(sysEcho.unit)
		m.User.Run(systemdtest.BusmedicPath, "restart-bus", "system")
		recovered(t, old, before)
	})
}
