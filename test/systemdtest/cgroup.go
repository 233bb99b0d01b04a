package systemdtest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupPrefix starts the name of every cgroup the harness makes, followed
// by the test process's run directory name and a number.
const cgroupPrefix = "busmedic-systemdtest-"

// cgroupRoot is where the cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// hierarchies returns the cgroup hierarchies a container needs a cgroup
// of its own in: the unified one alone on a cgroup v2 host; the named
// "systemd" v1 hierarchy and, in hybrid mode, the unified one beside it.
// systemd-nspawn with --keep-unit finds its cgroup in each and makes its
// payload and supervisor children there; containers sharing one cgroup
// would share those.
func hierarchies() []string {
	var fs syscall.Statfs_t
	if err := syscall.Statfs(cgroupRoot, &fs); err == nil && fs.Type == 0x63677270 { // CGROUP2_SUPER_MAGIC
		return []string{cgroupRoot}
	}
	var hs []string
	for _, h := range []string{"systemd", "unified"} {
		if _, err := os.Stat(filepath.Join(cgroupRoot, h, "cgroup.procs")); err == nil {
			hs = append(hs, filepath.Join(cgroupRoot, h))
		}
	}
	return hs
}

// cgroupDirs lists cg and every cgroup below it, deepest first.
func cgroupDirs(cg string) []string {
	var dirs []string
	filepath.WalkDir(cg, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	slices.Reverse(dirs)
	return dirs
}

// cgroupPIDs lists the processes in cg and below.
func cgroupPIDs(cg string) []int {
	var pids []int
	for _, dir := range cgroupDirs(cg) {
		data, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// removeCgroup kills every process left in cg and below, waits until they
// are gone and removes the cgroups, deepest first.
func removeCgroup(cg string) error {
	if _, err := os.Stat(cg); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := cgroupPIDs(cg)
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s: processes %v survive SIGKILL", cg, pids)
		}
		// cgroup.kill (Linux 5.14, cgroup v2) kills the whole tree at once,
		// also what forks meanwhile; elsewhere each process is killed.
		if err := os.WriteFile(filepath.Join(cg, "cgroup.kill"), []byte("1"), 0); err != nil {
			for _, pid := range pids {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(20 * time.Millisecond) // poll: dying processes leave the cgroup shortly
	}
	for _, dir := range cgroupDirs(cg) {
		if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove cgroup: %w", err)
		}
	}
	return nil
}
