package main

import (
	"encoding/json"
	"strings"
	"testing"

	"busmedic/relaunch/control"
	"busmedic/watcher/bustest"
)

// An update of the session bus daemon's executable shows in the status,
// and the status tells how to finish it.
func TestRunShowsUpdate(t *testing.T) {
	s := newSession(t, "version = 1\n", bustest.CopiedBinary())
	daemon := s.bus.Binary()
	s.start()
	s.await("the session bus up", busUp("session", true))

	s.bus.Update() // what dpkg does: a new file renamed over the old
	s.await("the update noticed", func(st control.Status) bool {
		for _, b := range st.Buses {
			if b.Name == "session" && strings.Contains(b.Outdated, daemon) {
				return true
			}
		}
		return false
	})
	var fromCLI control.Status
	if err := json.Unmarshal([]byte(s.runCLI("status", "--json")), &fromCLI); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fromCLI.Buses[0].Outdated+fromCLI.Buses[1].Outdated, daemon) {
		t.Errorf("status --json does not show the update: %+v", fromCLI.Buses)
	}
	if out := s.runCLI("status"); !strings.Contains(out, "update installed: restart the session bus") {
		t.Errorf("busmedic status:\n%s\nwant the update line", out)
	}
}
