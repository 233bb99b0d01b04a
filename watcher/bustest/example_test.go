package bustest_test

import (
	"testing"

	"busmedic/watcher/bustest"
)

// A test gets a real bus in one line, then restarts it like a crash would.
func ExampleNew() {
	var t *testing.T // the test's own t
	bus := bustest.New(t)
	app := bus.StartApp("-name", "org.example.Notifications")
	bus.Kill() // SIGKILL: the socket file stays behind
	<-app.Exited()
	bus.Start() // same address, new bus instance
}

// A package update of dbus, as dpkg makes it, under a running bus.
func ExampleBus_Update() {
	var t *testing.T // the test's own t
	bus := bustest.New(t, bustest.CopiedBinary())
	bus.Update()  // a new file renamed over bus.Binary(); the daemon runs on
	bus.Restart() // the new daemon runs the new file
}
