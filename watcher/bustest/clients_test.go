package bustest_test

import (
	"slices"
	"testing"

	"busmedic/watcher/bustest"
)

// A deaf program outlives its bus: Clients still finds it, by the bus
// address in its environment, and KillClients ends it.
func TestKillClients(t *testing.T) {
	bus := bustest.New(t)
	deaf := bus.StartApp("-name", "org.example.Deaf", "-mode", "deaf")
	other := bustest.New(t)
	stranger := other.StartApp("-name", "org.example.Other", "-mode", "deaf")
	bus.Kill()
	if clients := bus.Clients(); !slices.Contains(clients, deaf.PID()) || slices.Contains(clients, stranger.PID()) {
		t.Fatalf("Clients() = %v, want the deaf app %d and not the other bus's %d", clients, deaf.PID(), stranger.PID())
	}
	bus.KillClients()
	<-deaf.Exited()
	if clients := bus.Clients(); len(clients) != 0 {
		t.Errorf("Clients() after KillClients = %v", clients)
	}
	select {
	case <-stranger.Exited():
		t.Error("KillClients ended another bus's app")
	default:
	}
}
