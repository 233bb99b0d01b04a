package systemd

import (
	"context"
	"testing"
	"time"

	"busmedic/test/systemdtest"
)

// TestKeepInSystemdSession: an app kept by "busmedic keep", in a user
// unit of a real systemd session, lives through "systemctl --user restart
// dbus" (systemd stops the bus with SIGTERM), on dbus-daemon and on
// dbus-broker: the same process, in its unit, answering at its name on
// each new bus.
func TestKeepInSystemdSession(t *testing.T) {
	for _, impl := range []systemdtest.Bus{systemdtest.Daemon, systemdtest.Broker} {
		t.Run(string(impl), func(t *testing.T) {
			m := systemdtest.Boot(t, systemdtest.Options{UserBus: impl})
			const unit, name = "kept-echo.service", "org.example.Kept"
			m.User.StartUnit(unit, nil, systemdtest.BusmedicPath, "keep", "--", "/usr/bin/dbus-test-tool", "echo", "--name="+name)
			before := m.User.WaitUnit(unit, 10*time.Second, systemdtest.UnitState.Running)
			answers(t, m, name, "at the start")
			for i := range 3 {
				m.User.Run("systemctl", "--user", "restart", "dbus.service")
				answers(t, m, name, "after restart "+string(rune('1'+i)))
				if now := m.User.Unit(unit); !now.Running() || now.MainPID != before.MainPID {
					t.Fatalf("after restart %d of the bus, %s was %s, is %s: the kept app did not live through it", i+1, unit, before, now)
				}
			}
		})
	}
}

// answers waits for name on the user's session bus (gdbus wait follows
// the bus's NameOwnerChanged) and calls it once.
func answers(t *testing.T, m *systemdtest.Machine, name, when string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := m.User.Command(ctx, "gdbus", "wait", "--session", "--timeout", "20", name).CombinedOutput(); err != nil {
		t.Fatalf("%s: %s did not appear on the session bus: %v\n%s\nthe keeper's log:\n%s", when, name, err, out,
			m.User.Run("journalctl", "--user", "--no-pager", "-n", "40"))
	}
	if out, err := m.User.Command(ctx, "gdbus", "call", "--session", "--dest", name, "--object-path", "/",
		"--method", "org.freedesktop.DBus.Peer.Ping").CombinedOutput(); err != nil {
		t.Fatalf("%s: %s did not answer: %v\n%s", when, name, err, out)
	}
}
