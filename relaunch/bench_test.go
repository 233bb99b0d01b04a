package relaunch

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"busmedic/appdb"
	"busmedic/relaunch/control"
	"busmedic/watcher"
	"busmedic/watcher/bustest"
)

// The recovery benchmarks measure what users get after a bus restart, with
// the default rules (the default grace, which the engine skips for an app
// whose processes have all exited, as these apps' have). Each iteration
// restarts the bus twice, with SIGTERM in even iterations and SIGKILL in
// odd ones, and times from the moment the new daemon accepts connections
// (Start has returned) to every app's names on the new bus:
//
//   - floor: the engine is paused (its jobs end skipped) and the benchmark
//     starts the apps itself, at once and in parallel, as the engine does;
//   - recovery: the apps the floor started fall with the bus, and the real
//     watcher and engine bring them back.
//
// Both see the names through the same watcher. Metrics: ms/floor,
// ms/recovery and ratio (of those) are means over the iterations;
// ms/floor-p50 and ms/recovery-p50 medians, and ratio-p50 the median of
// each iteration's recovery / floor, which a loaded machine disturbs less
// (the two halves of an iteration run a few seconds apart at most). Where
// the time goes, as medians: ms/watcher-p50 is from the new daemon
// accepting to the engine taking the Restarted event (the watcher's
// reconnect); ms/started-p50 to the engine having started the last app
// (from its "started" log record), beside ms/floor-started-p50, when the
// floor had; what follows is the apps' own start-up, the same in both.
// ms/old-exit-p50 is how long after the new daemon accepted the last of the
// old processes had exited: the engine waits for that before it
// relaunches, the floor does not. ns/op means nothing here and is left
// out. With -v each iteration is logged.

// BenchmarkRecovery runs the recovery benchmark for N fixture apps
// (watcher/bustest/testapp -mode exit, each owning one name, one rule
// each), on the distribution's session configuration.
func BenchmarkRecovery(b *testing.B) {
	for _, n := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			app := bustest.TestApp(b)
			apps := make([]benchApp, n)
			for i := range apps {
				name := fmt.Sprintf("org.example.Bench%d", i)
				apps[i] = benchApp{id: fmt.Sprintf("bench%d", i), names: []string{name},
					argv: []string{app, "-name", name, "-mode", "exit"}}
			}
			benchRestarts(b, apps, func() (*bustest.Bus, []string) {
				bus := bustest.New(b, bustest.Stock())
				return bus, bus.Env()
			})
		})
	}
}

// benchApp is one app of a recovery benchmark.
type benchApp struct {
	id    string
	names []string // the rule's names: the app is back when all are owned
	argv  []string // the rule's exec, and what the floor starts
	// ready are further names the app owns once it is fully up (the
	// panel's notification area, which a plugin process of its own serves,
	// seconds later). Before each bus stop the benchmark waits for them,
	// untimed, so that the stop takes down the whole app.
	ready []string
}

// benchRules returns one rule per app, with every default.
func benchRules(apps []benchApp) string {
	var s strings.Builder
	s.WriteString("version = 1\n")
	for _, a := range apps {
		fmt.Fprintf(&s, "\n[[app]]\nid = %q\nnames = %s\nexec = %s\n", a.id, tomlList(a.names), tomlList(a.argv))
	}
	return s.String()
}

func tomlList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// benchSetup starts a bus for a benchmark session and returns it with the
// environment of the apps; the engine, and the floor, set the bus address
// in it.
type benchSetup func() (*bustest.Bus, []string)

// benchRestarts runs the benchmark described at the top of this file.
//
// The engine's storm guard (stormRestarts restarts within stormWindow)
// would hold every job for stormSettle once a bus restarts that often, so a
// session (a bus, a watcher and an engine, with the default settings) serves
// that many restarts at most, then the benchmark ends it and starts
// another, untimed.
func benchRestarts(b *testing.B, apps []benchApp, setup benchSetup) {
	var s *benchSession
	defer func() {
		if s != nil {
			s.close()
		}
	}()
	var floors []floorTimes
	var recoveries []recoveryTimes
	b.ResetTimer()
	for i := range b.N {
		if s == nil || s.restarts+2 >= stormRestarts {
			b.StopTimer()
			if s != nil {
				s.close()
			}
			s = newBenchSession(b, apps, setup)
			b.StartTimer()
		}
		term := i%2 == 0
		floors = append(floors, s.floor(term))
		recoveries = append(recoveries, s.recovery(term))
	}
	b.StopTimer()
	f := func(get func(floorTimes) time.Duration) []time.Duration { return collect(floors, get) }
	r := func(get func(recoveryTimes) time.Duration) []time.Duration { return collect(recoveries, get) }
	floor := f(func(t floorTimes) time.Duration { return t.took })
	recovery := r(func(t recoveryTimes) time.Duration { return t.took })
	ratios := make([]time.Duration, b.N)
	for i := range ratios {
		ratios[i] = time.Duration(float64(recovery[i]) / float64(floor[i]) * 1e6) // in millionths
	}
	b.ReportMetric(0, "ns/op") // both halves and the set-up: meaningless
	b.ReportMetric(msMean(floor), "ms/floor")
	b.ReportMetric(msMean(recovery), "ms/recovery")
	b.ReportMetric(msMean(recovery)/msMean(floor), "ratio")
	b.ReportMetric(msMedian(floor), "ms/floor-p50")
	b.ReportMetric(msMedian(recovery), "ms/recovery-p50")
	b.ReportMetric(msMedian(ratios), "ratio-p50")
	b.ReportMetric(msMedian(f(func(t floorTimes) time.Duration { return t.started })), "ms/floor-started-p50")
	b.ReportMetric(msMedian(r(func(t recoveryTimes) time.Duration { return t.started })), "ms/started-p50")
	b.ReportMetric(msMedian(r(func(t recoveryTimes) time.Duration { return t.watch })), "ms/watcher-p50")
	b.ReportMetric(msMedian(r(func(t recoveryTimes) time.Duration { return t.oldExit })), "ms/old-exit-p50")
	if slices.ContainsFunc(apps, func(a benchApp) bool { return len(a.ready) > 0 }) {
		b.ReportMetric(msMean(f(func(t floorTimes) time.Duration { return t.ready })), "ms/floor-ready")
		b.ReportMetric(msMean(r(func(t recoveryTimes) time.Duration { return t.ready })), "ms/recovery-ready")
	}
}

func collect[T any](ts []T, get func(T) time.Duration) []time.Duration {
	ds := make([]time.Duration, len(ts))
	for i, t := range ts {
		ds[i] = get(t)
	}
	return ds
}

func msMean(ds []time.Duration) float64 {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return float64(sum) / float64(len(ds)) / 1e6
}

func msMedian(ds []time.Duration) float64 {
	s := slices.Sorted(slices.Values(ds))
	n := len(s)
	return float64(s[(n-1)/2]+s[n/2]) / 2 / 1e6
}

// benchSession is a bus with a real watcher and engine on it, as
// newHarness makes, but one that a benchmark can end before the next.
type benchSession struct {
	b    *testing.B
	bus  *bustest.Bus
	env  []string
	apps []benchApp
	h    *harness
	// starts has when the engine last started each app.
	starts *startLog
	// restarts counts the bus restarts the engine has seen; stopped is
	// when the last one began.
	restarts int
	stopped  time.Time
	stop     func()
	once     sync.Once

	// direct are the processes the floor started; last are those of
	// the last floor.
	direct []*directProc
	last   []*directProc
}

// directProc is an app the benchmark started.
type directProc struct {
	cmd     *exec.Cmd
	started time.Time // when Start returned
	exited  chan struct{}
	at      time.Time // when it exited; set before exited is closed
}

func newBenchSession(b *testing.B, apps []benchApp, setup benchSetup) *benchSession {
	b.Helper()
	bus, env := setup()
	set, err := appdb.Parse("bench.toml", []byte(benchRules(apps)))
	if err != nil {
		b.Fatal(err)
	}
	h := &harness{t: b, bus: bus, dir: b.TempDir(), owners: map[string]string{},
		peers: map[string]watcher.Peer{}, notify: make(chan struct{})}
	starts := &startLog{Handler: testLogger(b).Handler(), times: map[string]time.Time{}}
	stop := h.run(Config{
		Rules:         func() *appdb.Set { return set },
		Env:           func() []string { return env },
		StateDir:      h.dir,
		Logger:        slog.New(starts),
		CasualtyGrace: 500 * time.Millisecond,
	})
	s := &benchSession{b: b, bus: bus, env: env, apps: apps, h: h, starts: starts, stop: stop}
	b.Cleanup(s.close)
	h.waitUp()
	// The first apps, for the first stop to take down.
	s.startDirect()
	h.until("every app started directly", s.allBack)
	s.waitReady()
	return s
}

// startLog passes the engine's log on to Handler and notes the time of
// each "started" record, which the engine writes as soon as it has started
// an app: the moment the engine's work for that app is done.
type startLog struct {
	slog.Handler
	mu    sync.Mutex
	times map[string]time.Time // by app
}

func (l *startLog) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= slog.LevelInfo || l.Handler.Enabled(ctx, level)
}

func (l *startLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "started" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "app" {
				l.mu.Lock()
				l.times[a.Value.String()] = r.Time
				l.mu.Unlock()
				return false
			}
			return true
		})
	}
	if !l.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return l.Handler.Handle(ctx, r)
}

func (l *startLog) at(app string) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.times[app]
}

// close ends the watcher and the engine, the bus, and every process that
// has the bus's address in its environment: the apps, their helpers, the
// services the bus started.
func (s *benchSession) close() {
	s.once.Do(func() {
		s.stop()
		for _, c := range s.h.eng.runningChildren() {
			syscall.Kill(c.pid, syscall.SIGKILL)
			<-c.exited
		}
		for _, p := range s.direct {
			p.cmd.Process.Kill()
			<-p.exited
		}
		if s.bus.Running() {
			s.bus.Kill()
		}
		s.bus.KillClients()
		if s.b.Failed() {
			s.dumpLogs()
		}
	})
}

// dumpLogs shows the end of the apps' output: of the floor's starts and of
// the engine's.
func (s *benchSession) dumpLogs() {
	logs, _ := filepath.Glob(filepath.Join(s.h.dir, "*.log"))
	more, _ := filepath.Glob(filepath.Join(s.h.dir, "logs", "*.log*"))
	for _, l := range append(logs, more...) {
		b, _ := os.ReadFile(l)
		size := len(b)
		if len(b) > 4000 {
			b = b[len(b)-4000:]
		}
		s.b.Logf("--- %s (%d bytes):\n%s", l, size, b)
	}
}

// owned reports whether every one of names has an owner on the bus.
func (s *benchSession) owned(names []string) bool {
	for _, n := range names {
		if _, ok := s.h.owners[n]; !ok {
			return false
		}
	}
	return true
}

func (s *benchSession) allBack() bool {
	return !slices.ContainsFunc(s.apps, func(a benchApp) bool { return !s.owned(a.names) })
}

func (s *benchSession) allReady() bool {
	return !slices.ContainsFunc(s.apps, func(a benchApp) bool { return !s.owned(a.ready) })
}

// waitBack waits until every app's names are on the bus and returns, for
// each app, how long after t0 they were seen there.
func (s *benchSession) waitBack(what string, t0 time.Time) []time.Duration {
	at := make([]time.Duration, len(s.apps))
	s.h.until(what, func() bool {
		all := true
		for i, a := range s.apps {
			if at[i] == 0 && s.owned(a.names) {
				at[i] = time.Since(t0)
			}
			all = all && at[i] != 0
		}
		return all
	})
	return at
}

func (s *benchSession) waitReady() { s.h.until("every app fully up", s.allReady) }

// cycle stops the bus with SIGTERM or SIGKILL and starts it again, and
// returns the moment the new daemon accepts connections. The watcher may
// be in already, and on a loaded machine the engine may even have acted.
func (s *benchSession) cycle(term bool) time.Time {
	s.stopped = time.Now()
	if term {
		s.bus.Stop()
	} else {
		s.bus.Kill()
	}
	s.bus.Start()
	s.restarts++
	return time.Now()
}

// startDirect starts every app, in parallel, as the engine would: in a
// session of its own, in the home directory, output to a file. It returns
// when each had started (its exec done).
func (s *benchSession) startDirect() []time.Time {
	env := append(s.env[:len(s.env):len(s.env)], "DBUS_SESSION_BUS_ADDRESS="+s.bus.Address())
	procs := make([]*directProc, len(s.apps))
	var wg sync.WaitGroup
	for i, a := range s.apps {
		wg.Go(func() {
			out, err := os.OpenFile(filepath.Join(s.h.dir, a.id+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
			if err != nil {
				s.b.Error(err)
				return
			}
			defer out.Close()
			cmd := exec.Command(a.argv[0], a.argv[1:]...)
			cmd.Env, cmd.Stdout, cmd.Stderr = env, out, out
			cmd.Dir, _ = os.UserHomeDir()
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
			if err := cmd.Start(); err != nil {
				s.b.Error(err)
				return
			}
			p := &directProc{cmd: cmd, started: time.Now(), exited: make(chan struct{})}
			go func() { cmd.Wait(); p.at = time.Now(); close(p.exited) }()
			procs[i] = p
		})
	}
	wg.Wait()
	if s.b.Failed() {
		s.b.FailNow()
	}
	s.direct = append(s.direct, procs...)
	s.last = procs
	started := make([]time.Time, len(procs))
	for i, p := range procs {
		started[i] = p.started
	}
	return started
}

// floorTimes are one floor's durations, from the moment the new bus
// accepted connections: to every app's names, to the last app started
// (its exec done), and to every app fully up.
type floorTimes struct{ took, started, ready time.Duration }

// floor restarts the bus with the engine paused and starts the apps itself.
func (s *benchSession) floor(term bool) floorTimes {
	s.h.eng.Pause()
	t0 := s.cycle(term)
	started := s.startDirect()
	id := s.h.waitUp()
	back := s.waitBack("every app started directly", t0)
	var f floorTimes
	f.took = slices.Max(back)
	rec := s.h.waitRecovery(id)
	for _, j := range rec.Jobs {
		if j.Outcome != control.Skipped {
			s.b.Fatalf("floor: job %s %s %q, want skipped (paused)", j.App, j.Outcome, j.Reason)
		}
	}
	s.h.eng.Resume()
	s.waitReady()
	f.ready = time.Since(t0)
	f.started = slices.Max(since(started, t0))
	if testing.Verbose() {
		s.b.Logf("floor    %s: back %s; started %s", sigName(term), s.perApp(back), s.perApp(since(started, t0)))
	}
	return f
}

// recoveryTimes are one recovery's durations, from the moment the new bus
// accepted connections: to every app's names, to every app fully up, to
// the engine taking the Restarted event, to the last app started by the
// engine (its exec done, which the engine logs at once), and to the exit of
// the last of the old processes.
type recoveryTimes struct{ took, ready, watch, started, oldExit time.Duration }

// recovery restarts the bus and lets the engine bring the apps back.
func (s *benchSession) recovery(term bool) recoveryTimes {
	t0 := s.cycle(term)
	id := s.h.waitUp()
	back := s.waitBack("every app back", t0)
	var r recoveryTimes
	r.took = slices.Max(back)
	rec := s.h.waitRecovery(id)
	s.waitReady()
	r.ready = time.Since(t0)
	r.watch = rec.Started.Sub(t0)
	jobs, started := make([]time.Time, len(s.apps)), make([]time.Time, len(s.apps))
	for i, a := range s.apps {
		j := jobOf(s.b, rec, a.id)
		if j.Outcome != control.Relaunched {
			s.b.Fatalf("recovery: job %s %s %q, want relaunched; status: %s", j.App, j.Outcome, j.Reason, s.h.statusString())
		}
		jobs[i], started[i] = j.Started, s.starts.at(a.id)
		if started[i].Before(s.stopped) {
			s.b.Fatalf("recovery: no \"started\" log record for %s", a.id)
		}
	}
	r.started = slices.Max(since(started, t0))
	exits := make([]time.Time, len(s.last))
	for i, p := range s.last {
		<-p.exited // they fell with the bus
		exits[i] = p.at
	}
	r.oldExit = max(slices.Max(since(exits, t0)), 0)
	if testing.Verbose() {
		s.b.Logf("recovery %s: back %s; Restarted taken at %s, jobs began %s, apps started %s, old processes exited %s",
			sigName(term), s.perApp(back), ms(r.watch), s.perApp(since(jobs, t0)), s.perApp(since(started, t0)), s.perApp(since(exits, t0)))
	}
	return r
}

func since(ts []time.Time, t0 time.Time) []time.Duration {
	ds := make([]time.Duration, len(ts))
	for i, t := range ts {
		ds[i] = t.Sub(t0)
	}
	return ds
}

func sigName(term bool) string {
	if term {
		return "SIGTERM"
	}
	return "SIGKILL"
}

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) + "ms" }

// perApp writes one duration per app, or their range for many apps.
func (s *benchSession) perApp(ds []time.Duration) string {
	if len(ds) > 3 {
		return ms(slices.Min(ds)) + ".." + ms(slices.Max(ds))
	}
	var parts []string
	for i, d := range ds {
		parts = append(parts, s.apps[i].id+" "+ms(d))
	}
	return strings.Join(parts, ", ")
}
