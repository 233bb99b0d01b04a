package main

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"busmedic/relaunch"
	"busmedic/watcher/bustest"
)

// An update of the session bus daemon's executable shows in the status,
// and the status tells how to finish it.
func TestRunShowsUpdate(t *testing.T) {
	orig, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Fatalf("dbus-daemon not found; install it: %s", bustest.InstallHint)
	}
	daemon := filepath.Join(t.TempDir(), "dbus-daemon")
	install(t, orig, daemon)
	s := newSession(t, "version = 1\n", bustest.Binary(daemon))
	s.start()
	s.await("the session bus up", busUp("session", true))

	install(t, orig, daemon) // what dpkg does: a new file renamed over the old
	s.await("the update noticed", func(st relaunch.Status) bool {
		for _, b := range st.Buses {
			if b.Name == "session" && strings.Contains(b.Outdated, daemon) {
				return true
			}
		}
		return false
	})
	var fromCLI relaunch.Status
	if err := json.Unmarshal([]byte(s.cli("status", "--json")), &fromCLI); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(fromCLI.Buses[0].Outdated+fromCLI.Buses[1].Outdated, daemon) {
		t.Errorf("status --json does not show the update: %+v", fromCLI.Buses)
	}
	if out := s.cli("status"); !strings.Contains(out, "update installed: restart the session bus") {
		t.Errorf("busmedic status:\n%s\nwant the update line", out)
	}
}

// install copies from to to as a package manager does: write next to it,
// then rename over it.
func install(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to+".dpkg-new", os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(to+".dpkg-new", to); err != nil {
		t.Fatal(err)
	}
}
