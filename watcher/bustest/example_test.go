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
