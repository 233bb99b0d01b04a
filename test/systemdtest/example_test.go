package systemdtest_test

import (
	"testing"
	"time"

	"busmedic/test/systemdtest"
)

// A test boots a session with dbus-broker as the session bus, runs
// busmedic and an app in user units, restarts the bus as a user would,
// and waits for the app to be back and for busmedic to say so.
func ExampleBoot() {
	var t *testing.T // the test's own t
	m := systemdtest.Boot(t, systemdtest.Options{
		UserBus: systemdtest.Broker,
		// A fixture program, built without cgo.
		Binds: map[string]string{"/usr/local/bin/testapp": systemdtest.Build(t, "busmedic/watcher/bustest/testapp")},
	})
	m.User.StartUnit("busmedic.service", nil, systemdtest.BusmedicPath, "run")
	m.User.WriteUnit("echo.service", `[Service]
Type=dbus
BusName=org.example.Echo
ExecStart=/usr/bin/dbus-test-tool echo --name=org.example.Echo
`)
	m.User.Run("systemctl", "--user", "start", "echo.service")
	before := m.User.Unit("echo.service")

	restart := time.Now()
	m.User.Run("systemctl", "--user", "restart", "dbus.service")
	m.User.WaitUnit("echo.service", 10*time.Second, func(s systemdtest.UnitState) bool {
		return s.Running() && s.MainPID != before.MainPID
	})
	e := m.User.WaitJournal("busmedic.service", `echo\.service`, restart, 10*time.Second)
	if e.Priority > 6 {
		t.Errorf("busmedic logged at priority %d: %s", e.Priority, e.Message)
	}
}

// Root restarts the system bus and reads the system manager.
func ExampleAccount_Unit() {
	var t *testing.T // the test's own t
	m := systemdtest.Boot(t, systemdtest.Options{SystemBus: systemdtest.Broker})
	m.Root.Run("systemctl", "restart", "dbus.service")
	m.Root.WaitUnit("dbus.service", 5*time.Second, systemdtest.UnitState.Running)
}
