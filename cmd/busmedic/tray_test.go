package main

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"busmedic/tray"
	"busmedic/watcher/bustest"
)

func TestTrayUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"tray", "-h"}, &out, &errOut); code != exitOK || !strings.Contains(out.String(), "Usage: busmedic tray") {
		t.Errorf("tray -h = %d, %q", code, out.String())
	}
	if code := run(t.Context(), []string{"tray", "extra"}, &out, &errOut); code != exitUsage {
		t.Errorf("tray extra = %d, want %d", code, exitUsage)
	}
}

// TestTrayCommand runs the built binary's "busmedic tray" on a test bus with
// no daemon: it shows its item (as "not reachable") and exits with
// tray.ExitBusLost when the bus is killed. The tray itself is tested in
// package tray.
func TestTrayCommand(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "busmedic")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	bus := bustest.New(t)
	conn, err := dbus.Connect(bus.Address())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.AddMatchSignal(dbus.WithMatchInterface("org.freedesktop.DBus"), dbus.WithMatchMember("NameOwnerChanged")); err != nil {
		t.Fatal(err)
	}
	sigs := make(chan *dbus.Signal, 64)
	conn.Signal(sigs)

	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "tray", "--socket", filepath.Join(t.TempDir(), "none.sock"))
	cmd.Env = bus.Env()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	item := "org.kde.StatusNotifierItem-" + strconv.Itoa(cmd.Process.Pid) + "-1"
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	for shown := false; !shown; {
		select {
		case s, ok := <-sigs:
			if !ok {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("test connection closed while waiting for %s; stderr:\n%s", item, stderr.String())
			}
			shown = len(s.Body) == 3 && s.Body[0] == item && s.Body[2] != ""
		case <-timer.C:
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("%s did not appear on the bus; stderr:\n%s", item, stderr.String())
		}
	}
	bus.Kill()
	err = cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != tray.ExitBusLost {
		t.Errorf("busmedic tray exited %d (%v), want %d; stderr:\n%s", code, err, tray.ExitBusLost, stderr.String())
	}
}
