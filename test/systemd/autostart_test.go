package systemd

import (
	"context"
	"strings"
	"testing"
	"time"

	"busmedic/relaunch/control"
	"busmedic/test/systemdtest"
)

// TestAutostartUnit is the life of busmedic's own unit as a user lives it:
// "busmedic autostart enable --systemd" enables and starts busmedic.service
// through the user manager; the unit survives restarts of the session bus
// (systemd does not stop it with the bus, and busmedic does not die); its
// log reaches the journal at the right priorities; "autostart disable"
// disables and stops it.
func TestAutostartUnit(t *testing.T) {
	for _, impl := range []systemdtest.Bus{systemdtest.Daemon, systemdtest.Broker} {
		t.Run(string(impl), func(t *testing.T) { testAutostartUnit(t, impl) })
	}
}

func testAutostartUnit(t *testing.T, impl systemdtest.Bus) {
	m := systemdtest.Boot(t, systemdtest.Options{UserBus: impl})
	const unit = "busmedic.service"
	// A user who runs no graphical session starts it with the manager.
	out := m.User.Run(systemdtest.BusmedicPath, "autostart", "enable", "--systemd", "--target", "default.target")
	t.Logf("autostart enable:\n%s", out)
	if got := state(m, "is-enabled", unit); got != "enabled" {
		t.Errorf("after autostart enable, %s is %q, want enabled", unit, got)
	}
	self := m.User.WaitUnit(unit, 10*time.Second, systemdtest.UnitState.Running)
	s := &session{t: t, m: m}
	started := time.Now()
	s.waitStatus(30*time.Second, "busmedic in its unit answers", func(st control.Status) bool { return bus(st, "session").Up })

	for i, how := range restarts {
		st, _ := s.status()
		old := bus(st, "session").ID
		how.do(s)
		s.waitStatus(30*time.Second, "busmedic sees the new session bus after "+how.name, func(st control.Status) bool {
			b := bus(st, "session")
			return b.Up && b.ID != old
		})
		if now := m.User.Unit(unit); !now.Running() || now.MainPID != self.MainPID || now.NRestarts != self.NRestarts {
			t.Fatalf("restart %d (%s): %s was %s, is %s", i, how.name, unit, self, now)
		}
	}

	// Each record is in the journal at its level's priority: info as 6,
	// so that "journalctl -p warning" leaves it out, and a broken rules
	// file as a warning (4) that it shows.
	e := m.User.WaitJournal(unit, `bus restarted`, started, 10*time.Second)
	if e.Priority != 6 {
		t.Errorf("%q logged at priority %d, want 6 (info)", e.Message, e.Priority)
	}
	m.User.WriteFile(".config/busmedic/apps.toml", []byte("[[app]]\nid = 3\n"), 0o644)
	e = m.User.WaitJournal(unit, `rules not loaded`, started, 10*time.Second)
	if e.Priority != 4 {
		t.Errorf("%q logged at priority %d, want 4 (warning)", e.Message, e.Priority)
	}
	if strings.HasPrefix(e.Message, "<") {
		t.Errorf("the priority prefix reached the journal's message: %q", e.Message)
	}

	out = m.User.Run(systemdtest.BusmedicPath, "autostart", "disable")
	t.Logf("autostart disable:\n%s", out)
	if got := state(m, "is-enabled", unit); got == "enabled" {
		t.Errorf("after autostart disable, %s is still enabled", unit)
	}
	m.User.WaitUnit(unit, 10*time.Second, systemdtest.UnitState.Stopped)
}

// state is the one-word answer of systemctl --user VERB UNIT, whatever
// its exit status.
func state(m *systemdtest.Machine, verb, unit string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, _ := m.User.Command(ctx, "systemctl", "--user", verb, unit).Output()
	return strings.TrimSpace(string(out))
}
