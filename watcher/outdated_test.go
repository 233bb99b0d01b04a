package watcher

import (
	"context"
	"strings"
	"testing"
	"time"

	"busmedic/watcher/bustest"
)

// updatedBus runs a test bus from a copy of dbus-daemon, which the test can
// replace as dpkg would (bus.Update), and returns the bus, the copy and the
// daemon peer.
func updatedBus(t *testing.T) (*bustest.Bus, string, Peer) {
	t.Helper()
	bus := bustest.New(t, bustest.CopiedBinary())
	daemon, err := ProcessInfo(bus.PID())
	if err != nil {
		t.Fatal(err)
	}
	return bus, bus.Binary(), daemon
}

func TestOutdatedAfterUpdate(t *testing.T) {
	bus, exe, daemon := updatedBus(t)
	if out, why, err := checkOutdated(daemon); err != nil || out {
		t.Fatalf("checkOutdated before the update = %v %q %v", out, why, err)
	}
	files := daemonFiles(daemon)
	if len(files) == 0 || files[0] != exe {
		t.Fatalf("daemonFiles = %v, want the executable %s first", files, exe)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changed := make(chan string, 4)
	var dirs dirWatch
	if err := dirs.open(); err != nil {
		t.Fatal(err)
	}
	fw := newFileWatch(&dirs)
	if err := fw.watch(files); err != nil {
		t.Fatal(err)
	}
	// As follow does while the bus is up: it reads the shared instance
	// and hands the file watch its events.
	events, _ := dirs.channels()
	pumped := make(chan struct{})
	go func() {
		defer close(pumped)
		for ev := range events {
			fw.offer(ev)
		}
	}()
	done := make(chan struct{})
	go func() {
		defer close(done)
		fw.Run(ctx, func(f string) { changed <- f })
	}()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	bus.Update()
	select {
	case f := <-changed:
		if f != exe {
			t.Errorf("change reported for %s, want %s", f, exe)
		}
	case <-timer.C:
		t.Fatal("replacing the daemon's executable was not noticed")
	}
	out, why, err := checkOutdated(daemon)
	if err != nil || !out || !strings.Contains(why, exe) {
		t.Errorf("checkOutdated after the update = %v %q %v; want true naming %s", out, why, err, exe)
	}
	// Without /proc access, change times tell the same.
	if out, why, err := outdatedByTime(daemon, files); err != nil || !out || !strings.Contains(why, exe) {
		t.Errorf("outdatedByTime after the update = %v %q %v", out, why, err)
	}
	cancel()
	<-done
	fw.stop()
	if n := len(dirs.refs); n != 0 {
		t.Errorf("%d directories still watched after stop", n)
	}
	dirs.close()
	<-pumped
}

const deadline = 20 * time.Second
