package systemdtest

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sync"
	"testing"
)

// BusmedicPath is where every container has busmedic: a CGO_ENABLED=0
// build of busmedic/cmd/busmedic made from the test's source tree, bound
// read-only.
const BusmedicPath = "/usr/local/bin/busmedic"

// builds memoises Build per package: one build per test binary.
var builds struct {
	sync.Mutex
	done map[string]*buildResult
}

type buildResult struct {
	once sync.Once
	path string
	err  error
}

// Build builds the Go package pkg (an import path such as
// "busmedic/cmd/busmedic") with CGO_ENABLED=0, once per test binary, and
// returns the host path of the program, for Options.Binds. Without cgo the
// program runs in the container whatever C library the host has.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	builds.Lock()
	if builds.done == nil {
		builds.done = map[string]*buildResult{}
	}
	b := builds.done[pkg]
	if b == nil {
		b = &buildResult{}
		builds.done[pkg] = b
	}
	builds.Unlock()
	b.once.Do(func() {
		run, err := runDir()
		if err != nil {
			b.err = fmt.Errorf("build %s: run directory: %w", pkg, err)
			return
		}
		// One directory per package: programs keep their own names.
		dir, err := os.MkdirTemp(run, "bin-")
		if err != nil {
			b.err = fmt.Errorf("build %s: %w", pkg, err)
			return
		}
		b.path = filepath.Join(dir, path.Base(pkg))
		cmd := exec.Command("go", "build", "-o", b.path, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatalf("systemdtest: %v", b.err)
	}
	return b.path
}
