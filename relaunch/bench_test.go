package relaunch

import (
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"busmedic/watcher/bustest"
)

// BenchmarkRecovery measures, for N exit-mode fixture apps, the time from
// the new bus accepting connections to the last app's name back on it; and
// beside it the floor: the same N fixtures started directly, in parallel,
// until their names are on the bus. ratio = recovery / floor.
func BenchmarkRecovery(b *testing.B) {
	for _, n := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) { benchRecovery(b, n) })
	}
}

func benchRecovery(b *testing.B, n int) {
	var rules strings.Builder
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("org.example.Bench%d", i)
		fmt.Fprintf(&rules, "[[app]]\nid = \"bench%d\"\nnames = [%q]\nexec = [\"TESTAPP\", \"-name\", %q, \"-mode\", \"exit\"]\ngrace = \"0s\"\nmax_restarts = 1000\n\n", i, names[i], names[i])
	}
	h := newHarness(b, rules.String(), func(c *Config, _ *bustest.Bus) { c.Concurrency = 8 })
	app := bustest.TestApp(b)
	allBack := func() bool {
		for _, name := range names {
			if _, ok := h.owners[name]; !ok {
				return false
			}
		}
		return true
	}
	// The floor: start the N fixtures directly, in parallel, and wait for
	// their names. They then serve as the apps the next recovery brings
	// back (they exit with the bus).
	var reap sync.WaitGroup
	defer reap.Wait()
	floor := func() time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				cmd := exec.Command(app, "-name", names[i], "-mode", "exit")
				cmd.Env = h.bus.Env()
				cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
				if err := cmd.Start(); err != nil {
					b.Error(err)
					return
				}
				reap.Go(func() { cmd.Wait() })
			})
		}
		wg.Wait()
		h.until("all fixtures started directly", allBack)
		return time.Since(start)
	}

	var recovery, floorTotal time.Duration
	b.ResetTimer()
	for range b.N {
		floorTotal += floor()
		b.StopTimer()
		h.bus.Kill()
		b.StartTimer()
		h.bus.Start() // returns once the new daemon accepts connections
		t0 := time.Now()
		id := h.waitUp()
		h.until("every app back", allBack)
		recovery += time.Since(t0)
		b.StopTimer()
		h.waitRecovery(id)
		// Free the names for the next floor; the bus stays up, so this is
		// no recovery.
		for _, c := range h.eng.runningChildren() {
			syscall.Kill(c.pid, syscall.SIGKILL)
			<-c.exited
		}
		h.until("the recovered apps gone", func() bool { return !anyOwned(h, names) })
		b.StartTimer()
	}
	b.StopTimer()
	per, perFloor := recovery/time.Duration(b.N), floorTotal/time.Duration(b.N)
	b.ReportMetric(float64(per.Microseconds())/1000, "ms/recovery")
	b.ReportMetric(float64(perFloor.Microseconds())/1000, "ms/floor")
	b.ReportMetric(float64(per)/float64(perFloor), "ratio")
}

func anyOwned(h *harness, names []string) bool {
	for _, name := range names {
		if _, ok := h.owners[name]; ok {
			return true
		}
	}
	return false
}
