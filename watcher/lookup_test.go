package watcher_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"busmedic/watcher"
	"busmedic/watcher/bustest"
)

// TestProcessPeers asks a real bus who a process is on it: an app with two
// names, a process on no bus, and a bus that is not there.
func TestProcessPeers(t *testing.T) {
	bus := bustest.New(t)
	app := bus.StartApp("-name", "org.example.Two", "-name", "org.example.One")
	target := watcher.Target{Name: "session", Address: bus.Address()}

	peers, err := watcher.ProcessPeers(t.Context(), target, app.PID())
	if err != nil {
		t.Fatal(err)
	}
	if len(peers) != 1 || peers[0].PID != app.PID() || peers[0].UniqueName == "" || peers[0].Exe == "" ||
		!slices.Equal(peers[0].Names, []string{"org.example.One", "org.example.Two"}) {
		t.Errorf("ProcessPeers(app) = %+v, want its one connection with both names, sorted, and its exe", peers)
	}

	if peers, err := watcher.ProcessPeers(t.Context(), target, os.Getpid()); err != nil || len(peers) != 0 {
		t.Errorf("ProcessPeers(a process on no bus) = %+v, %v; want none, no error", peers, err)
	}

	gone := watcher.Target{Name: "session", Address: "unix:path=" + filepath.Join(t.TempDir(), "none")}
	if _, err := watcher.ProcessPeers(t.Context(), gone, app.PID()); err == nil {
		t.Error("ProcessPeers on a bus that is not there: no error")
	}
}
