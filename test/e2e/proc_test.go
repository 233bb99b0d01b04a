package e2e

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// proc is one process, told apart from a later one with the same pid by
// its start time.
type proc struct {
	pid   int
	start uint64 // clock ticks since boot, field 22 of /proc/PID/stat
}

func (p proc) String() string { return strconv.Itoa(p.pid) }

// statFields returns the fields of /proc/PID/stat after the command name
// (which may hold anything, and ends with the last ')'): the state is [0],
// the parent [1], utime and stime [11] and [12], the start time [19].
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return nil, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	return f, nil
}

// procOf returns the process pid is now.
func procOf(pid int) (proc, error) {
	f, err := statFields(pid)
	if err != nil {
		return proc{}, err
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	return proc{pid, start}, err
}

// alive reports whether p still runs: same pid and start time, no zombie.
func (p proc) alive() bool {
	f, err := statFields(p.pid)
	return err == nil && f[0] != "Z" && f[19] == strconv.FormatUint(p.start, 10)
}

// age returns how long p has run.
func (p proc) age() time.Duration {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	up, _ := strconv.ParseFloat(strings.Fields(string(b))[0], 64)
	// Start times are in clock ticks, 100 a second on Linux.
	return time.Duration((up - float64(p.start)/100) * float64(time.Second))
}

// parent returns the parent pid of a running process, or 0.
func parent(pid int) int {
	f, err := statFields(pid)
	if err != nil {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

// children returns the pids of a process's children.
func children(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, task := range tasks {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, task.Name()))
		for c := range strings.FieldsSeq(string(b)) {
			if child, err := strconv.Atoi(c); err == nil {
				out = append(out, child)
			}
		}
	}
	return out
}

// treeTicks returns the CPU time, in clock ticks, that a process and its
// running descendants have used.
func treeTicks(pid int) uint64 {
	f, err := statFields(pid)
	if err != nil {
		return 0
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	s, _ := strconv.ParseUint(f[12], 10, 64)
	n := u + s
	for _, c := range children(pid) {
		n += treeTicks(c)
	}
	return n
}

func exeOf(pid int) string {
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	return strings.TrimSuffix(exe, " (deleted)")
}

func argvOf(pid int) []string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}
