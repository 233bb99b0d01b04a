package systemdtest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCachedBuildsOnce: concurrent callers (each with a lock file of its
// own open, as separate test processes have) build once, and every one
// returns only when the directory is complete.
func TestCachedBuildsOnce(t *testing.T) {
	const callers = 4
	dir := filepath.Join(t.TempDir(), "tree")
	var builds, waits atomic.Int32
	allWaiting := make(chan struct{})
	wait := func() {
		if waits.Add(1) == callers-1 {
			close(allWaiting)
		}
	}
	build := func(tmp string) error {
		builds.Add(1)
		if err := os.Mkdir(tmp, 0o755); err != nil {
			return err
		}
		// The build finishes once the others wait for it.
		select {
		case <-allWaiting:
		case <-time.After(10 * time.Second):
			t.Errorf("%d callers waited for the build, want %d", waits.Load(), callers-1)
		}
		return os.WriteFile(filepath.Join(tmp, "done"), nil, 0o644)
	}
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			if err := cached(dir, build, wait); err != nil {
				t.Error(err)
				return
			}
			if _, err := os.Stat(filepath.Join(dir, "done")); err != nil {
				t.Errorf("returned before the build was complete: %v", err)
			}
		})
	}
	wg.Wait()
	if builds.Load() != 1 {
		t.Errorf("%d builds, want 1", builds.Load())
	}
}

// TestCollect: the directories of test processes that are gone are
// removed, those of running ones kept (a pid now used by another process
// counts as gone: the start time differs).
func TestCollect(t *testing.T) {
	parent := t.TempDir()
	self, err := processID(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	pid, _, _ := strings.Cut(self, "-")
	names := map[string]bool{self: true, "2147483646-1": false, pid + "-1": false, "not-a-run": true}
	for name := range names {
		if err := os.MkdirAll(filepath.Join(parent, name, "bin-1"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	collect(parent)
	for name, keep := range names {
		if _, err := os.Stat(filepath.Join(parent, name)); (err == nil) != keep {
			t.Errorf("%s: stat %v, want kept %v", name, err, keep)
		}
	}
}

// TestCachedFailedBuild: a build that fails leaves nothing that a later
// call could take for the tree, and the next call builds again; what a
// killed build left behind is removed first.
func TestCachedFailedBuild(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tree")
	boom := errors.New("boom")
	err := cached(dir, func(tmp string) error {
		os.Mkdir(tmp, 0o755)
		return boom
	}, func() {})
	if !errors.Is(err, boom) {
		t.Fatalf("cached: %v, want %v", err, boom)
	}
	if leftovers, _ := filepath.Glob(dir + "*"); len(leftovers) != 1 || leftovers[0] != dir+".lock" {
		t.Fatalf("after a failed build: %v, want only the lock file", leftovers)
	}

	killed := dir + ".tmp-1"
	if err := os.MkdirAll(filepath.Join(killed, "half"), 0o755); err != nil {
		t.Fatal(err)
	}
	built := false
	if err := cached(dir, func(tmp string) error {
		if _, err := os.Stat(killed); err == nil {
			t.Error("the killed build's directory is still there")
		}
		built = true
		return os.Mkdir(tmp, 0o755)
	}, func() {}); err != nil {
		t.Fatal(err)
	}
	if !built {
		t.Error("no build after a failed one")
	}
	if _, err := os.Stat(dir); err != nil {
		t.Error(err)
	}
}
