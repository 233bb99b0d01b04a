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
// figures are reported as ratios to its figures of the same run.
var benchPaths = []path{direct, xdgProxy, keeperProcess}

// ratios holds direct's last figures by metric, for the ratios.
type ratios struct {
	mu     sync.Mutex
	direct map[string]float64
}

// report reports a figure of path and, for the proxies, its ratio to
// direct's ("UNIT-x").
func (r *ratios) report(b *testing.B, p path, v float64, unit string) {
	b.ReportMetric(v, unit)
	r.mu.Lock()
	defer r.mu.Unlock()
	if p.name == direct.name {
		r.direct[unit] = v
		return
	}
	if d := r.direct[unit]; d > 0 {
		b.ReportMetric(v/d, unit+"-x")
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
	c, err := dialBus(addr)
	if err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// BenchmarkKeep: latency of a small method call, throughput of a stream
// of signals and of 1 MB byte arrays, and memory per kept app.
func BenchmarkKeep(b *testing.B) {
	bus := bustest.New(b, bustest.Stock())
	rb := newRealBus(b, bus)
	// The service of the calls: dbus-test-tool echo, libdbus in C,
	// straight on the bus, which answers any call with an empty reply.
	startEcho(b, rb, bus.Address(), echoName)
	r := &ratios{direct: map[string]float64{}}

	// Latency: a godbus client on the path calls echo, one call at a
	// time. The path's process CPU per call is reported too.
	b.Run("latency", func(b *testing.B) {
		for _, p := range benchPaths {
			b.Run(p.name, func(b *testing.B) {
				addr, pid := p.start(b, bus)
				c := dialOrFail(b, addr)
				obj := c.Object(echoName, "/")
				call := func() time.Duration {
					start := time.Now()
					if err := obj.Call("org.example.Bench.Ping", 0, "ping").Err; err != nil {
						b.Fatalf("call: %v", err)
					}
					return time.Since(start)
				}
				for range 200 { // connections and caches warm
					call()
				}
				took := make([]time.Duration, b.N)
				ticks := 0
				if pid != 0 {
					ticks = cpuTicks(b, pid)
				}
				b.ResetTimer()
				for i := range b.N {
					took[i] = call()
				}
				b.StopTimer()
				slices.Sort(took)
				r.report(b, p, float64(took[len(took)/2].Nanoseconds())/1e3, "p50-µs")
				r.report(b, p, float64(took[len(took)*99/100].Nanoseconds())/1e3, "p99-µs")
				if pid != 0 {
					// Two messages a call: the call and its reply.
					b.ReportMetric(float64(cpuTicks(b, pid)-ticks)*1e4/float64(2*b.N), "cpu-µs/msg")
				}
			})
		}
	})

	// Signals: a godbus sender straight on the bus emits a stream to a
	// godbus receiver on the path (the bus to a kept app), at most 100
	// unreceived at a time, as a flow-controlled stream (the bus drops
	// signals beyond a receiver's queue limit).
	b.Run("signals", func(b *testing.B) {
		for _, p := range benchPaths {
			b.Run(p.name, func(b *testing.B) {
				addr, _ := p.start(b, bus)
				recv := dialOrFail(b, addr)
				rule := []dbus.MatchOption{dbus.WithMatchInterface("org.example.Bench"), dbus.WithMatchMember("Tick")}
				if err := recv.AddMatchSignal(rule...); err != nil {
					b.Fatal(err)
				}
				ch := make(chan *dbus.Signal, 1024)
				recv.Signal(ch)
				send := dialOrFail(b, bus.Address())
				const window = 100
				sem := make(chan struct{}, window)
				done := make(chan error, 1)
				go func() {
					for got := 0; got < b.N; {
						s, ok := <-ch
						if !ok {
							done <- fmt.Errorf("the receiver's connection closed after %d signals", got)
							return
						}
						if s.Name == "org.example.Bench.Tick" {
							got++
							<-sem
						}
					}
					done <- nil
				}()
				b.ResetTimer()
				start := time.Now()
				for i := range b.N {
					sem <- struct{}{}
					if err := send.Emit("/org/example/Bench", "org.example.Bench.Tick", uint32(i), "tick"); err != nil {
						b.Fatalf("emit: %v", err)
					}
				}
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				took := time.Since(start)
				b.StopTimer()
				r.report(b, p, float64(b.N)/took.Seconds(), "msgs/s")
			})
		}
	})

	// 1 MB byte arrays: dbus-test-tool spam (libdbus, C) on the path
	// calls echo with a 1 MB "ay", four calls in flight (the app to the
	// bus).
	b.Run("bytes", func(b *testing.B) {
		spam := need(b, "dbus-test-tool", "dbus-tests")
		payload := bytes.Repeat([]byte("k"), 1<<20)
		for _, p := range benchPaths {
			b.Run(p.name, func(b *testing.B) {
				addr, _ := p.start(b, bus)
				cmd := exec.Command(spam, "spam", "--dest="+echoName, "--bytes", "--stdin",
					"--queue=4", "--count="+strconv.Itoa(b.N))
				cmd.Env = appEnv(addr)
				cmd.Stdin = bytes.NewReader(payload)
				b.ResetTimer()
				start := time.Now()
				out, err := cmd.CombinedOutput()
				took := time.Since(start)
				b.StopTimer()
				if err != nil {
					b.Fatalf("dbus-test-tool spam: %v: %s", err, out)
				}
				r.report(b, p, float64(b.N)/took.Seconds(), "MB/s")
			})
		}
	})

	// Memory: the proxy's PSS with 50 dbus-test-tool echo apps connected
	// through it, minus its PSS with none, per app. Measured once per
	// path; the benchmark's later rounds report the same figures.
	b.Run("memory", func(b *testing.B) {
		for _, p := range benchPaths[1:] {
			var once sync.Once
			var empty, perApp float64
			b.Run(p.name, func(b *testing.B) {
				once.Do(func() { empty, perApp = memoryPerApp(b, bus, rb, p, 50) })
				for range b.N {
				}
				b.ReportMetric(empty, "MB-empty")
				b.ReportMetric(perApp, "MB/app")
			})
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
