package tray

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"busmedic/watcher/bustest"
)

// TestIdleCost measures the tray child's idle memory and wakeups beside a
// minimal fyne.io/systray program, on the same bus in the same run. It
// takes a minute, so it runs only when asked: see BENCH.md.
func TestIdleCost(t *testing.T) {
	benchOnly(t)
	settle, window := 15*time.Second, 60*time.Second
	if v := os.Getenv("BUSMEDIC_BENCH_WINDOW"); v != "" {
		window, _ = time.ParseDuration(v)
	}
	minimal, child := buildTestdata(t, "minimal"), buildTestdata(t, "traychild")

	bus := bustest.New(t)
	snw := startSNW(t, bus)
	socket := serveControl(t, newBackend())
	start := func(bin string, args ...string) *exec.Cmd {
		cmd := exec.Command(bin, args...)
		cmd.Env = bus.Env()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		snw.next(t)
		return cmd
	}
	floor := start(minimal)
	// BUSMEDIC_BENCH_BINARY measures a built busmedic's "tray" instead.
	ours := start(child, "-socket", socket)
	if bin := os.Getenv("BUSMEDIC_BENCH_BINARY"); bin != "" {
		ours.Process.Kill()
		ours = start(bin, "tray", "--socket", socket)
	}

	// Let both settle (GC, the dbusmenu refresh systray schedules, and
	// the tray's one hand-back of memory 5 s after its last change, whose
	// GC wakes every thread once), then count what happens while nothing
	// does.
	<-time.After(settle)
	s0, o0 := switches(t, floor.Process.Pid), switches(t, ours.Process.Pid)
	<-time.After(window)
	s1, o1 := switches(t, floor.Process.Pid), switches(t, ours.Process.Pid)
	rf, ro := rss(t, floor.Process.Pid), rss(t, ours.Process.Pid)
	// Anonymous memory is the process's own; file pages are mostly the
	// binary's code, shared with the daemon when both run one binary.
	af, ao := smaps(t, floor.Process.Pid, "Anonymous:"), smaps(t, ours.Process.Pid, "Anonymous:")
	perMin := func(a, b int) float64 { return float64(b-a) / window.Minutes() }
	t.Logf("idle over %s:", window)
	t.Logf("  minimal fyne.io/systray: RSS %6d kB (anonymous %5d kB), %.1f context switches/min", rf, af, perMin(s0, s1))
	t.Logf("  busmedic tray child:     RSS %6d kB (anonymous %5d kB), %.1f context switches/min", ro, ao, perMin(o0, o1))
	t.Logf("  ratio: %.2fx RSS, %.2fx anonymous", float64(ro)/float64(rf), float64(ao)/float64(af))
	fmt.Fprintf(os.Stderr, "RESULT floor_rss_kB=%d tray_rss_kB=%d ratio=%.2f floor_anon_kB=%d tray_anon_kB=%d floor_switches_per_min=%.1f tray_switches_per_min=%.1f\n",
		rf, ro, float64(ro)/float64(rf), af, ao, perMin(s0, s1), perMin(o0, o1))
}

// rss is the process's resident set in kB.
func rss(t *testing.T, pid int) int {
	return statusField(t, fmt.Sprintf("/proc/%d/status", pid), "VmRSS:")
}

// smaps reads one total of the process's memory map, in kB.
func smaps(t *testing.T, pid int, key string) int {
	return statusField(t, fmt.Sprintf("/proc/%d/smaps_rollup", pid), key)
}

// switches counts the context switches of all the process's threads: each
// wakeup of an idle thread is one.
func switches(t *testing.T, pid int) int {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("threads of %d: %v", pid, err)
	}
	n := 0
	for _, f := range tasks {
		n += statusField(t, f, "voluntary_ctxt_switches:") + statusField(t, f, "nonvoluntary_ctxt_switches:")
	}
	return n
}

func statusField(t *testing.T, file, key string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, key); ok {
			n, err := strconv.Atoi(strings.Fields(v)[0])
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("%s: no %s", file, key)
	return 0
}

// benchOnly skips a measurement unless BUSMEDIC_BENCH is set: they take a
// while and assert nothing about speed (see BENCH.md).
func benchOnly(t *testing.T) {
	if os.Getenv("BUSMEDIC_BENCH") == "" {
		t.Skip("set BUSMEDIC_BENCH=1 to measure (see BENCH.md)")
	}
}

// buildTestdata builds the program testdata/name and returns its path.
func buildTestdata(t *testing.T, name string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), name)
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/"+name).CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, out)
	}
	return bin
}
