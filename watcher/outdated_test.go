package watcher

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"busmedic/watcher/bustest"
)

// updatedBus runs a test bus from a copy of dbus-daemon, which the test can
// replace as dpkg would, and returns the bus, the copy and the daemon peer.
func updatedBus(t *testing.T) (*bustest.Bus, string, Peer) {
	t.Helper()
	orig, err := exec.LookPath("dbus-daemon")
	if err != nil {
		t.Fatalf("dbus-daemon not found; install it: %s", bustest.InstallHint)
	}
	copyPath := filepath.Join(t.TempDir(), "bin", "dbus-daemon")
	if err := os.MkdirAll(filepath.Dir(copyPath), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, orig, copyPath)
	bus := bustest.New(t, bustest.Binary(copyPath))
	daemon, err := ProcessInfo(bus.PID())
	if err != nil {
		t.Fatal(err)
	}
	return bus, copyPath, daemon
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	// dpkg unpacks next to the file, then renames over it: a new inode.
	tmp := to + ".dpkg-new"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, to); err != nil {
		t.Fatal(err)
	}
}

func TestOutdatedAfterUpdate(t *testing.T) {
	_, exe, daemon := updatedBus(t)
	if out, why, err := CheckOutdated(daemon); err != nil || out {
		t.Fatalf("CheckOutdated before the update = %v %q %v", out, why, err)
	}
	files := DaemonFiles(daemon)
	if len(files) == 0 || files[0] != exe {
		t.Fatalf("DaemonFiles = %v, want the executable %s first", files, exe)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changed := make(chan string, 4)
	fw, err := WatchFiles(files)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- fw.Run(ctx, func(f string) { changed <- f }) }()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	copyFile(t, exe, exe)
	select {
	case f := <-changed:
		if f != exe {
			t.Errorf("change reported for %s, want %s", f, exe)
		}
	case <-timer.C:
		t.Fatal("replacing the daemon's executable was not noticed")
	}
	out, why, err := CheckOutdated(daemon)
	if err != nil || !out || !strings.Contains(why, exe) {
		t.Errorf("CheckOutdated after the update = %v %q %v; want true naming %s", out, why, err, exe)
	}
	// Without /proc access, change times tell the same.
	if out, why, err := outdatedByTime(daemon, files); err != nil || !out || !strings.Contains(why, exe) {
		t.Errorf("outdatedByTime after the update = %v %q %v", out, why, err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

const deadline = 20 * time.Second
