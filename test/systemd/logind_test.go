package systemd

import (
	"strings"
	"testing"
	"time"

	"busmedic/test/systemdtest"
)

// TestShutdownFromLogind is a machine shutting down while busmedic runs in
// its user unit, in no login session: the real logind announces the
// shutdown (PrepareForShutdown), the session bus goes, and busmedic must
// not start the apps that fell off it again, and leave as the session
// does.
func TestShutdownFromLogind(t *testing.T) {
	m := systemdtest.Boot(t, systemdtest.Options{})
	echo := sessionApps[0]
	m.User.WriteFile(".config/busmedic/apps.toml", []byte(rulesFor([]app{echo}, "1s")), 0o644)
	m.User.WriteUnit(echo.unit, echo.text)
	m.User.Run("systemctl", "--user", "start", echo.unit)
	started := time.Now()
	m.User.StartUnit("busmedic.service", nil, systemdtest.BusmedicPath, "run", "--no-tray")
	// Without a session of its own, busmedic still follows logind for a
	// shutdown.
	m.User.WaitJournal("busmedic.service", `following only a shutdown`, started, 30*time.Second)
	s := &session{t: t, m: m, apps: []app{echo}}
	s.waitStatus(30*time.Second, "busmedic sees the app", s.allRunning)

	// A delay inhibitor holds the shutdown after logind announced it, as a
	// desktop's session manager does, long enough for the test to act.
	m.Root.WriteFile("/etc/systemd/logind.conf.d/delay.conf", []byte("[Login]\nInhibitDelayMaxSec=60\n"), 0o644)
	m.Root.Run("systemctl", "restart", "systemd-logind.service")
	// systemd-inhibit runs its command once it holds the lock: the line
	// the command prints says the lock is held, so PowerOff cannot
	// overtake it.
	m.Root.StartUnit("hold-shutdown.service", nil, "/usr/bin/systemd-inhibit", "--what=shutdown", "--mode=delay",
		"--who=test", "--why=the test looks at busmedic first", "/bin/sh", "-c", "echo shutdown held; exec sleep infinity")
	m.Root.WaitJournal("hold-shutdown.service", `shutdown held`, started, 10*time.Second)
	shutdown := time.Now()
	m.Root.Run("busctl", "call", "org.freedesktop.login1", "/org/freedesktop/login1",
		"org.freedesktop.login1.Manager", "PowerOff", "b", "false")
	m.User.WaitJournal("busmedic.service", `PrepareForShutdown`, shutdown, 10*time.Second)

	restart := time.Now()
	m.User.Run("systemctl", "--user", "restart", "dbus.service")
	// busmedic says why it starts nothing, and leaves with the session.
	e := m.User.WaitJournal("busmedic.service", `no recovery`, restart, 10*time.Second)
	if !strings.Contains(e.Message, "shutting down") {
		t.Errorf("busmedic gave another reason for no recovery: %s", e.Message)
	}
	u := m.User.WaitUnit("busmedic.service", 10*time.Second, systemdtest.UnitState.Stopped)
	if u.ActiveState == "failed" {
		t.Errorf("busmedic.service ended as %s: systemd would start it again in a shutdown", u)
	}
	if u := m.User.Unit(echo.unit); u.Running() {
		t.Errorf("%s runs again during a shutdown: %s", echo.unit, u)
	}
}
