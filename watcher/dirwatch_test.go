package watcher

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestDirWatchShared holds one directory for two watches, as the socket's
// directory may also hold the bus daemon's files: the first to let go
// leaves the other's watch in place; the last ends it.
func TestDirWatchShared(t *testing.T) {
	var d dirWatch
	if err := d.open(); err != nil {
		t.Fatal(err)
	}
	defer d.close()
	dir := t.TempDir()
	if err := d.add(dir); err != nil {
		t.Fatal(err)
	}
	if err := d.add(dir); err != nil {
		t.Fatal(err)
	}
	d.remove(dir)
	events, _ := d.channels()
	file := filepath.Join(dir, "socket")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for seen := false; !seen; {
		select {
		case ev := <-events:
			seen = ev.Name == file
		case <-timer.C:
			t.Fatalf("no event for %s within %s", file, deadline)
		}
	}
	d.remove(dir)
	if l := d.fw.WatchList(); len(l) != 0 {
		t.Errorf("watched after the last holder let go: %v", l)
	}
}

// TestDirWatchAddAllOrNone adds nothing when one of the directories cannot
// be watched, so that the holder has nothing to remove.
func TestDirWatchAddAllOrNone(t *testing.T) {
	var d dirWatch
	if err := d.add(t.TempDir()); err == nil {
		t.Error("add without an instance succeeded")
	}
	if err := d.open(); err != nil {
		t.Fatal(err)
	}
	defer d.close()
	dir := t.TempDir()
	if err := d.add(dir, filepath.Join(dir, "missing")); err == nil {
		t.Fatal("add of a missing directory succeeded")
	}
	if l := d.fw.WatchList(); slices.Contains(l, dir) || len(d.refs) != 0 {
		t.Errorf("after a failed add: watched %v, held %v", l, d.refs)
	}
}
