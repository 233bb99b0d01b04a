package main

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"busmedic/relaunch/control"
	"busmedic/watcher/bustest"
)

// TestSoak is the soak run of issue 14, gated because it takes most of an
// hour: BUSMEDIC_SOAK=1000 restarts a real bus (the distribution's session
// configuration) that many times under busmedic run, SIGTERM and SIGKILL
// mixed, each 0–1.5 s down, every tenth restarted again during its
// recovery, with five apps of which two have the default grace. Every
// cycle every app must be back, exactly once. It prints the cycles, the
// recovery times (from the new bus accepting connections to every app
// back, busmedic's recovery ended) and the daemon's descriptors, threads
// and RSS at the start and at the end:
//
//	BUSMEDIC_SOAK=1000 go test -run TestSoak -timeout 3h -v ./cmd/busmedic
func TestSoak(t *testing.T) {
	cycles, _ := strconv.Atoi(os.Getenv("BUSMEDIC_SOAK"))
	if cycles <= 0 {
		t.Skip("set BUSMEDIC_SOAK=CYCLES to run the soak")
	}
	apps := []chaosApp{
		{id: "exit1", name: "org.example.Exit1", args: []string{"-mode", "exit"}, rule: `grace = "100ms"`},
		{id: "exit2", name: "org.example.Exit2", args: []string{"-mode", "exit"}},
		{id: "deaf", name: "org.example.Deaf", args: []string{"-mode", "deaf"}, rule: `stop_timeout = "300ms"`},
		{id: "exit3", name: "org.example.Exit3", args: []string{"-mode", "exit"}, rule: `grace = "500ms"`},
		{id: "reconnector", name: "org.example.Reconnector", args: []string{"-mode", "reconnect"}, rule: `grace = "5s"`},
	}
	c := newChaos(t, apps, bustest.Stock())
	c.begin()
	pid := c.daemon.Process.Pid
	// The daemon's own measure is taken once it has done one recovery:
	// what it holds after start-up is not what it holds for days.
	c.randomRestart()
	c.settled("the first restart")
	start := idleResources(c, pid)
	var took []time.Duration
	for i := range cycles {
		if t.Failed() {
			break
		}
		c.randomRestart()
		begun := time.Now()
		if i%10 == 9 {
			// Again, while the first recovery is under way.
			c.await("a recovery under way", func(st control.Status) bool {
				return st.LastRecovery != nil && st.LastRecovery.ID == c.id
			})
			c.randomRestart()
			begun = time.Now()
		}
		st := c.settled(fmt.Sprintf("cycle %d", i+1))
		took = append(took, time.Since(begun))
		if testing.Verbose() {
			var jobs []string
			for _, j := range st.LastRecovery.Jobs {
				jobs = append(jobs, fmt.Sprintf("%s %s %s", j.App, j.Outcome, j.Took.Round(time.Millisecond)))
			}
			t.Logf("cycle %d: %s: %s", i+1, took[len(took)-1].Round(time.Millisecond), strings.Join(jobs, ", "))
		}
	}
	end := idleResources(c, pid)
	slices.Sort(took)
	pct := func(p float64) time.Duration { return took[int(p*float64(len(took)-1))].Round(time.Millisecond) }
	t.Logf("soak: %d cycles (%d bus restarts), every app back every time, no app twice", len(took), c.restarts)
	t.Logf("soak: recovery p50 %s, p95 %s, max %s", pct(0.5), pct(0.95), took[len(took)-1].Round(time.Millisecond))
	t.Logf("soak: busmedic run fds %d -> %d, threads %d -> %d, RSS %.1f -> %.1f MB",
		start.fds, end.fds, start.threads, end.threads, float64(start.rss)/1e6, float64(end.rss)/1e6)
}

// idleResources measures the daemon once it has handed back the memory of
// its last recovery (it does 5 s after one), as it sits between bus
// restarts. c has just settled a recovery.
func idleResources(c *chaos, pid int) resources {
	c.t.Helper()
	c.waitLogCount(memoryHandedBack, strings.Count(c.log.String(), memoryHandedBack)+1)
	return daemonResources(c.t, pid)
}

// memoryHandedBack is what the daemon logs (at debug) once it has handed
// its memory back after start-up or a recovery.
const memoryHandedBack = "memory handed back to the system"

type resources struct {
	fds, threads int
	rss          int64 // bytes
}

func daemonResources(t *testing.T, pid int) resources {
	t.Helper()
	var r resources
	fds, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatalf("daemon fds: %v", err)
	}
	r.fds = len(fds)
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatalf("daemon status: %v", err)
	}
	for line := range bytes.Lines(status) {
		k, v, _ := strings.Cut(string(line), ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "Threads":
			r.threads = int(n)
		case "VmRSS":
			r.rss = n * 1024
		}
	}
	return r
}
