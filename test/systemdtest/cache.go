package systemdtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// CacheDir holds what the harness keeps between test runs: the root file
// system (built once, about 265 MB), and a directory per running test
// process for its binaries and its containers' writable layers. It is
// outside the repository so that `go test ./...` and `git status` never see
// it; delete it to rebuild everything.
const CacheDir = "/var/cache/busmedic/systemdtest"

// runDir is this process's directory under CacheDir/run, named after the
// process (pid and start time, so that a reused pid is not taken for it);
// the first call removes the directories and cgroups that dead test
// processes left behind (a test binary killed by -timeout runs no Cleanup).
var runDir = sync.OnceValues(func() (string, error) {
	self, err := processID(os.Getpid())
	if err != nil {
		return "", err
	}
	parent := filepath.Join(CacheDir, "run")
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", parent, err)
	}
	collect(parent)
	dir := filepath.Join(parent, self)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	return dir, nil
})

// processID names a live process by its pid and its start time in clock
// ticks since boot (field 22 of /proc/PID/stat).
func processID(pid int) (string, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	// The command name, in parentheses, may hold spaces: count fields after it.
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return "", fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 20 {
		return "", fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	return fmt.Sprintf("%d-%s", pid, f[19]), nil
}

// collect removes what test processes that are gone left under parent, and
// their containers' cgroups (killing what still runs in them: a container
// whose test is gone is of no use to anyone).
func collect(parent string) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		pidText, _, ok := strings.Cut(e.Name(), "-")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil {
			continue
		}
		if id, err := processID(pid); err == nil && id == e.Name() {
			continue // still running
		}
		for _, h := range hierarchies() {
			matches, _ := filepath.Glob(filepath.Join(h, cgroupPrefix+e.Name()+"-*"))
			for _, cg := range matches {
				removeCgroup(cg)
			}
		}
		os.RemoveAll(filepath.Join(parent, e.Name()))
	}
}

// cached returns dir, having made it with build if it does not exist yet.
// build fills a temporary directory beside dir, which is then renamed to
// dir: a build that failed or was killed half-way is never taken for a
// complete one. A lock file beside dir makes concurrent test processes (go
// test runs packages in parallel) build once; the others wait for it.
// wait is called before waiting on another process's build.
func cached(dir string, build func(tmp string) error, wait func()) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(dir), err)
	}
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("open lock: %w", err)
	}
	defer lock.Close() // closing the file releases the lock
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); errors.Is(err, syscall.EWOULDBLOCK) {
		wait()
		err = syscall.Flock(int(lock.Fd()), syscall.LOCK_EX)
		if err != nil {
			return fmt.Errorf("lock %s: %w", lock.Name(), err)
		}
	} else if err != nil {
		return fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	if _, err := os.Stat(dir); err == nil {
		return nil // built by the process we waited for
	}
	// Under the lock, a temporary directory is what a build that died left.
	stale, _ := filepath.Glob(dir + ".tmp-*")
	for _, s := range stale {
		if err := os.RemoveAll(s); err != nil {
			return fmt.Errorf("remove unfinished build: %w", err)
		}
	}
	tmp := fmt.Sprintf("%s.tmp-%d", dir, os.Getpid())
	if err := build(tmp); err != nil {
		os.RemoveAll(tmp)
		return err
	}
	if err := os.Rename(tmp, dir); err != nil {
		os.RemoveAll(tmp)
		return fmt.Errorf("rename build: %w", err)
	}
	return nil
}
