package keep_test

// BenchmarkKeep measures what the keeper costs an app, beside a direct
// connection and beside xdg-dbus-proxy (the proxy flatpak uses), in the
// same run, on a bus of its own. The keeper runs as a process of its own,
// as in production: the test binary again, told by TestMain to serve.
// BENCH.md has the command and the figures.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"busmedic/keep"
	"busmedic/relaunch/control"
	"busmedic/watcher/bustest"
)

// The environment that makes the test binary a keeper (serveKeeper): the
// socket to listen on and the real bus's address.
const (
	serveEnv = "BUSMEDIC_KEEP_TEST_SERVE"
	busEnv   = "BUSMEDIC_KEEP_TEST_BUS"
)

func TestMain(m *testing.M) {
	if sock := os.Getenv(serveEnv); sock != "" {
		os.Exit(serveKeeper(sock, os.Getenv(busEnv)))
	}
	os.Exit(m.Run())
}

// serveKeeper is the keeper process of the benchmark: it serves on sock
// for the bus at addr, says "ready" on stdout, and ends on SIGTERM.
func serveKeeper(sock, addr string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "keeper:", err)
		return 1
	}
	k := keep.New(keep.Config{
		Bus:     "session",
		Address: func() (string, error) { return addr, nil },
		Logger:  keeperLogger(),
		Report:  func(control.KeptReport) {},
	})
	fmt.Println("ready")
	if err := k.Serve(ctx, l); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "keeper:", err)
		return 1
	}
	return 0
}

// keeperProcess is the keeper as a process of its own.
var keeperProcess = path{"keeper", startKeeperProcess}

func startKeeperProcess(t testing.TB, bus *bustest.Bus) (string, int) {
	t.Helper()
	sock := filepath.Join(shortDir(t), "keep.sock")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), serveEnv+"="+sock, busEnv+"="+bus.Address())
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the keeper process: %v", err)
	}
	ready := make(chan bool, 1)
	exited := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		ready <- sc.Scan() && sc.Text() == "ready"
		for sc.Scan() {
		}
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(waitLimit):
			t.Errorf("the keeper process did not end within %s of SIGTERM", waitLimit)
			cmd.Process.Kill()
			<-exited
		}
	})
	select {
	case ok := <-ready:
		if !ok {
			t.Fatalf("the keeper process did not say ready: %s", stderr.String())
		}
	case <-time.After(waitLimit):
		t.Fatalf("the keeper process not ready within %s: %s", waitLimit, stderr.String())
	}
	return "unix:path=" + sock, cmd.Process.Pid
}

// benchPaths are the three ways to the bus, direct first: the others'
// figures are reported beside it as ratios.
var benchPaths = []path{direct, xdgProxy, keeperProcess}

// lane is one path, started, for one round of a benchmark.
type lane struct {
	path
	addr string
	pid  int // the proxy's process, or 0 (direct)
}

// startLanes starts the three paths to bus.
func startLanes(b *testing.B, bus *bustest.Bus) []lane {
	b.Helper()
	lanes := make([]lane, len(benchPaths))
	for i, p := range benchPaths {
		addr, pid := p.start(b, bus)
		lanes[i] = lane{p, addr, pid}
	}
	return lanes
}

// order is the order the lanes take their turn in round i: each goes
// first, second and third in turn, so that neither a cache warmed by the
// one before nor the machine's other load favours one.
func order(i, n int) []int {
	o := make([]int, n)
	for j := range o {
		o[j] = (i + j) % n
	}
	return o
}

// reportAll reports each lane's figure as "PATH-UNIT" and, for the
// proxies, its ratio to direct's as "PATH-UNIT-x".
func reportAll(b *testing.B, lanes []lane, unit string, v []float64) {
	for i, l := range lanes {
		b.ReportMetric(v[i], l.name+"-"+unit)
		if i > 0 && v[0] > 0 {
			b.ReportMetric(v[i]/v[0], l.name+"-"+unit+"-x")
		}
	}
}

// cpuTicks is the CPU time pid has used, in clock ticks (1/100 s).
func cpuTicks(t testing.TB, pid int) int {
	t.Helper()
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command (which may hold spaces), from field 3.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return utime + stime
}

// pssKB is pid's proportional set size: its own pages, and its share of
// those it shares, which is what one more process costs the machine.
func pssKB(t testing.TB, pid int) int {
	t.Helper()
	rollup, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(rollup)) {
		if rest, ok := strings.CutPrefix(line, "Pss:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				t.Fatalf("smaps_rollup of %d: %q: %v", pid, line, err)
			}
			return kb
		}
	}
	t.Fatalf("smaps_rollup of %d has no Pss", pid)
	return 0
}

func dialOrFail(t testing.TB, addr string) *dbus.Conn {
	t.Helper()
	c, err := dbus.Connect(addr)
	if err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// BenchmarkKeep: latency of a small method call, throughput of a stream
// of signals and of 1 MB byte arrays, and memory per kept app. The three
// paths take turns within each benchmark, message by message or round by
// round, so that they share the machine's conditions (it may be busy with
// other work) and their ratios hold even when the absolute figures move.
func BenchmarkKeep(b *testing.B) {
	bus := bustest.New(b, bustest.Stock())
	rb := newRealBus(b, bus)
	// The service of the calls: dbus-test-tool echo, libdbus in C,
	// straight on the bus, which answers any call with an empty reply.
	startEcho(b, rb, bus.Address(), echoName)

	// Latency: a godbus client on each path calls echo, one call at a
	// time; b.N calls per path (ns/op is one call on each of the three).
	// The proxies' CPU time per message is reported too.
	b.Run("latency", func(b *testing.B) {
		lanes := startLanes(b, bus)
		objs := make([]dbus.BusObject, len(lanes))
		for i, l := range lanes {
			objs[i] = dialOrFail(b, l.addr).Object(echoName, "/")
		}
		call := func(i int) time.Duration {
			start := time.Now()
			if err := objs[i].Call("org.example.Bench.Ping", 0, "ping").Err; err != nil {
				b.Fatalf("%s: call: %v", lanes[i].name, err)
			}
			return time.Since(start)
		}
		for range 200 { // connections and caches warm
			for i := range lanes {
				call(i)
			}
		}
		took := make([][]time.Duration, len(lanes))
		ticks := make([]int, len(lanes))
		for i, l := range lanes {
			took[i] = make([]time.Duration, b.N)
			if l.pid != 0 {
				ticks[i] = cpuTicks(b, l.pid)
			}
		}
		b.ResetTimer()
		for n := range b.N {
			for _, i := range order(n, len(lanes)) {
				took[i][n] = call(i)
			}
		}
		b.StopTimer()
		p50, p99 := make([]float64, len(lanes)), make([]float64, len(lanes))
		for i, l := range lanes {
			slices.Sort(took[i])
			p50[i] = float64(took[i][b.N/2].Nanoseconds()) / 1e3
			p99[i] = float64(took[i][b.N*99/100].Nanoseconds()) / 1e3
			if l.pid != 0 {
				// Two messages a call: the call and its reply.
				b.ReportMetric(float64(cpuTicks(b, l.pid)-ticks[i])*1e4/float64(2*b.N), l.name+"-cpu-µs/msg")
			}
		}
		reportAll(b, lanes, "p50-µs", p50)
		reportAll(b, lanes, "p99-µs", p99)
	})

	// Signals: a godbus sender straight on the bus emits a stream to a
	// godbus receiver on each path (the bus to a kept app), at most 100
	// unreceived at a time, as a flow-controlled stream (the bus drops
	// signals beyond a receiver's queue limit); b.N signals per path, in
	// rounds of 500.
	b.Run("signals", func(b *testing.B) {
		lanes := startLanes(b, bus)
		send := dialOrFail(b, bus.Address())
		chans := make([]chan *dbus.Signal, len(lanes))
		for i, l := range lanes {
			recv := dialOrFail(b, l.addr)
			// Each lane's own member, so that a receiver sees only its
			// own stream.
			if err := recv.AddMatchSignal(dbus.WithMatchInterface("org.example.Bench"),
				dbus.WithMatchMember(fmt.Sprintf("Tick%d", i))); err != nil {
				b.Fatal(err)
			}
			chans[i] = make(chan *dbus.Signal, 1024)
			recv.Signal(chans[i])
		}
		stream := func(i, n int) time.Duration {
			const window = 100
			sem := make(chan struct{}, window)
			done := make(chan error, 1)
			member := fmt.Sprintf("org.example.Bench.Tick%d", i)
			start := time.Now()
			go func() {
				for got := 0; got < n; {
					s, ok := <-chans[i]
					if !ok {
						done <- fmt.Errorf("%s: the receiver's connection closed after %d signals", lanes[i].name, got)
						return
					}
					if s.Name == member {
						got++
						<-sem
					}
				}
				done <- nil
			}()
			for k := range n {
				sem <- struct{}{}
				if err := send.Emit("/org/example/Bench", member, uint32(k), "tick"); err != nil {
					b.Fatalf("emit: %v", err)
				}
			}
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			return time.Since(start)
		}
		took := make([]time.Duration, len(lanes))
		b.ResetTimer()
		for round, left := 0, b.N; left > 0; round++ {
			n := min(left, 500)
			for _, i := range order(round, len(lanes)) {
				took[i] += stream(i, n)
			}
			left -= n
		}
		b.StopTimer()
		rate := make([]float64, len(lanes))
		for i := range lanes {
			rate[i] = float64(b.N) / took[i].Seconds()
		}
		reportAll(b, lanes, "msgs/s", rate)
	})

	// 1 MB byte arrays: dbus-test-tool spam (libdbus, C) on each path
	// calls echo with a 1 MB "ay", four calls in flight (an app to the
	// bus); b.N arrays per path, in rounds of 25 (one spam each).
	b.Run("bytes", func(b *testing.B) {
		spam := need(b, "dbus-test-tool", "dbus-tests")
		payload := bytes.Repeat([]byte("k"), 1<<20)
		lanes := startLanes(b, bus)
		run := func(i, n int) time.Duration {
			cmd := exec.Command(spam, "spam", "--dest="+echoName, "--bytes", "--stdin",
				"--queue=4", "--count="+strconv.Itoa(n))
			cmd.Env = appEnv(lanes[i].addr)
			cmd.Stdin = bytes.NewReader(payload)
			start := time.Now()
			out, err := cmd.CombinedOutput()
			if err != nil {
				b.Fatalf("%s: dbus-test-tool spam: %v: %s", lanes[i].name, err, out)
			}
			return time.Since(start)
		}
		took := make([]time.Duration, len(lanes))
		b.ResetTimer()
		for round, left := 0, b.N; left > 0; round++ {
			n := min(left, 25)
			for _, i := range order(round, len(lanes)) {
				took[i] += run(i, n)
			}
			left -= n
		}
		b.StopTimer()
		rate := make([]float64, len(lanes))
		for i := range lanes {
			rate[i] = float64(b.N) / took[i].Seconds()
		}
		reportAll(b, lanes, "MB/s", rate)
	})

	// Memory: each proxy's PSS with 50 dbus-test-tool echo apps connected
	// through it, minus its PSS with none, per app. Measured once; the
	// benchmark's later rounds report the same figures.
	var once sync.Once
	var empty, perApp []float64
	b.Run("memory", func(b *testing.B) {
		once.Do(func() {
			for _, p := range benchPaths[1:] {
				e, a := memoryPerApp(b, bus, rb, p, 50)
				empty, perApp = append(empty, e), append(perApp, a)
			}
		})
		for range b.N {
		}
		for i, p := range benchPaths[1:] {
			b.ReportMetric(empty[i], p.name+"-MB-empty")
			b.ReportMetric(perApp[i], p.name+"-MB/app")
		}
	})
}

// memoryPerApp starts path p and n echo apps through it, and returns the
// path's process PSS with none (MB) and what each app adds (MB).
func memoryPerApp(b *testing.B, bus *bustest.Bus, rb *realBus, p path, n int) (empty, perApp float64) {
	b.Helper()
	addr, pid := p.start(b, bus)
	// A first app, gone before the measure: the proxy's code paths are
	// paged in and its runtime warm, as in a session.
	first := startEcho(b, rb, addr, "org.example.Warm")
	first.cmd.Process.Kill()
	<-first.exited
	before := pssKB(b, pid)
	for i := range n {
		startEcho(b, rb, addr, fmt.Sprintf("org.example.Mem%d", i))
	}
	after := pssKB(b, pid)
	b.Logf("%s: PSS %d kB empty, %d kB with %d apps", p.name, before, after, n)
	return float64(before) / 1024, float64(after-before) / 1024 / float64(n)
}
