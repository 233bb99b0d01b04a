package relaunch

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
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

// waitLimit bounds every wait in these tests.
const waitLimit = 30 * time.Second

// harness is a real bus, a real watcher and an engine, with a tap on the
// events so that the test sees names come and go as the engine does.
type harness struct {
	t   testing.TB
	bus *bustest.Bus
	eng *Engine
	dir string

	lastUp string
	// edit, if set, changes each event before the harness and the engine
	// see it: it stands in for what this machine cannot show, such as a
	// process in a unit of dbus-broker's.
	edit func(*watcher.Event)

	mu     sync.Mutex
	id     string
	owners map[string]string
	peers  map[string]watcher.Peer
	notify chan struct{}
}

type harnessOpt func(*Config, *bustest.Bus)

// newHarness starts a bus, a watcher on it and an engine with the rules in
// rulesTOML, in which "TESTAPP" stands for the fixture program.
func newHarness(t testing.TB, rulesTOML string, opts ...harnessOpt) *harness {
	t.Helper()
	// The distribution's session configuration, as a desktop session has
	// it: a trimmed test configuration could hide how the daemon shuts down.
	return newHarnessOn(t, []bustest.Option{bustest.Stock()}, rulesTOML, opts...)
}

// newHarnessOn is newHarness on a bus started with busOpts.
func newHarnessOn(t testing.TB, busOpts []bustest.Option, rulesTOML string, opts ...harnessOpt) *harness {
	t.Helper()
	return newHarnessEditing(t, busOpts, nil, rulesTOML, opts...)
}

// newHarnessEditing is newHarnessOn with the watcher's events changed by
// edit (harness.edit), if not nil.
func newHarnessEditing(t testing.TB, busOpts []bustest.Option, edit func(*watcher.Event), rulesTOML string, opts ...harnessOpt) *harness {
	t.Helper()
	bus := bustest.New(t, busOpts...)
	ourBuses.Store(bus.Address(), true)
	h := &harness{t: t, bus: bus, dir: t.TempDir(), owners: map[string]string{},
		peers: map[string]watcher.Peer{}, notify: make(chan struct{}), edit: edit}
	set := parseRules(t, rulesTOML)
	cfg := Config{
		Rules:         func() *appdb.Set { return set },
		Env:           func() []string { return bus.Env() },
		StateDir:      h.dir,
		Logger:        testLogger(t),
		CasualtyGrace: 500 * time.Millisecond,
	}
	for _, o := range opts {
		o(&cfg, bus)
	}
	stop := h.run(cfg)
	t.Cleanup(func() {
		stop()
		// Apps the engine started run in their own session and would
		// outlive the test.
		for _, c := range h.eng.runningChildren() {
			syscall.Kill(c.pid, syscall.SIGKILL)
			<-c.exited
		}
	})
	h.waitUp()
	return h
}

// run starts an engine with cfg and a watcher on h's bus feeding it, with h
// observing the same events first; stop ends both and waits for them.
func (h *harness) run(cfg Config) (stop func()) {
	h.t.Helper()
	h.eng = New(cfg)
	w, err := watcher.New(watcher.Target{Name: "session", Address: h.bus.Address()}, watcher.WithLogger(testLogger(h.t)))
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	raw := make(chan watcher.Event, 256)
	events := make(chan watcher.Event, 256)
	var wg sync.WaitGroup
	wg.Go(func() { w.Run(ctx, raw) })
	wg.Go(func() {
		defer close(events)
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-raw:
				if h.edit != nil {
					h.edit(&ev)
				}
				h.observe(ev)
				select {
				case events <- ev:
				case <-ctx.Done():
					return
				}
			}
		}
	})
	runErr := make(chan error, 1)
	go func() { runErr <- h.eng.Run(ctx, events) }()
	return func() {
		cancel()
		wg.Wait()
		<-runErr
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func parseRules(t testing.TB, rulesTOML string) *appdb.Set {
	t.Helper()
	data := strings.ReplaceAll(rulesTOML, "TESTAPP", bustest.TestApp(t))
	set, err := appdb.Parse("test.toml", []byte(data))
	if err != nil {
		t.Fatalf("rules: %v\n%s", err, data)
	}
	return set
}

func (h *harness) observe(ev watcher.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch ev.Kind {
	case watcher.Up:
		h.id = ev.ID
		clear(h.owners)
		clear(h.peers)
	case watcher.Down:
		h.id = ""
		clear(h.owners)
		clear(h.peers)
	case watcher.PeerJoined:
		h.peers[ev.Peer.UniqueName] = *ev.Peer
		for _, n := range ev.Peer.Names {
			h.owners[n] = ev.Peer.UniqueName
		}
	case watcher.PeerLeft:
		delete(h.peers, ev.Peer.UniqueName)
	case watcher.NameOwnerChanged:
		if ev.NewOwner == "" {
			delete(h.owners, ev.Name)
		} else {
			h.owners[ev.Name] = ev.NewOwner
		}
	}
	close(h.notify)
	h.notify = make(chan struct{})
}

// until waits for cond (checked under h.mu on every event) or fails the test.
func (h *harness) until(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		h.mu.Lock()
		ok := cond()
		ch := h.notify
		h.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-h.eng.Changed():
		case <-deadline.C:
			h.t.Fatalf("timed out after %s waiting for %s; status: %s", waitLimit, what, h.statusString())
		}
	}
}

// waitUp waits for a bus instance other than the one the last waitUp
// returned: after Kill or Stop the watcher may not have reported Down yet.
func (h *harness) waitUp() string {
	h.t.Helper()
	var id string
	h.until("the bus to be up", func() bool { id = h.id; return id != "" && id != h.lastUp })
	h.lastUp = id
	return id
}

// owner returns the pid owning name now, or 0.
func (h *harness) owner(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.peers[h.owners[name]].PID
}

// waitOwner waits until name is owned by a process other than not, and
// returns its pid.
func (h *harness) waitOwner(name string, not int) int {
	h.t.Helper()
	var pid int
	h.until(name+" on the bus", func() bool {
		u, ok := h.owners[name]
		pid = h.peers[u].PID
		return ok && pid != 0 && pid != not
	})
	return pid
}

// crash kills the bus with SIGKILL, as a crash does, starts it again at the
// same address and returns the recovery that follows.
func (h *harness) crash() control.Recovery {
	h.t.Helper()
	h.bus.Kill()
	h.bus.Start()
	return h.waitRecovery(h.waitUp())
}

// history returns every recovery the engine recorded, newest first.
func (h *harness) history() []control.Recovery {
	h.t.Helper()
	hist, err := h.eng.History(0)
	if err != nil {
		h.t.Fatal(err)
	}
	return hist
}

// waitRecovery waits until the engine has ended the recovery of bus
// instance id and returns it.
func (h *harness) waitRecovery(id string) control.Recovery {
	h.t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		st := h.eng.Status()
		if r := st.LastRecovery; r != nil && r.ID == id && !r.Ended.IsZero() {
			return *r
		}
		select {
		case <-h.eng.Changed():
		case <-deadline.C:
			h.t.Fatalf("no ended recovery for bus %s within %s; status: %s", id, waitLimit, h.statusString())
		}
	}
}

func (h *harness) statusString() string {
	st := h.eng.Status()
	var b strings.Builder
	for _, a := range st.Apps {
		fmt.Fprintf(&b, "\n  app %s running=%v pids=%v", a.ID, a.Running, a.PIDs)
		if a.Last != nil {
			fmt.Fprintf(&b, " last=%s %q", a.Last.Outcome, a.Last.Reason)
		}
	}
	if r := st.LastRecovery; r != nil {
		fmt.Fprintf(&b, "\n  last recovery %s ended=%v decision=%q", r.ID, !r.Ended.IsZero(), r.Decision)
	}
	return b.String()
}

func jobOf(t testing.TB, r control.Recovery, app string) control.Job {
	t.Helper()
	for _, j := range r.Jobs {
		if j.App == app {
			return j
		}
	}
	t.Fatalf("no job for %s in recovery %+v", app, r)
	return control.Job{}
}

// countProcs counts live processes (not zombies) whose argv has arg, such
// as "-name" "org.example.A" or the path of dbus-monitor.
// ourBuses holds the addresses of this test binary's buses: countProcs
// counts only processes on them, since the tests of other packages, run at
// the same time, start the same fixture apps on buses of their own.
var ourBuses sync.Map

// onOurBus reports whether process pid has one of our buses as its session
// bus.
func onOurBus(pid int) bool {
	env, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
	if err != nil {
		return false
	}
	addr := ""
	for kv := range strings.SplitSeq(string(env), "\x00") {
		if a, ok := strings.CutPrefix(kv, "DBUS_SESSION_BUS_ADDRESS="); ok {
			addr = a
		}
	}
	_, ours := ourBuses.Load(addr)
	return ours
}

func countProcs(t testing.TB, match func(argv []string) bool) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		if _, state, err := procStat(pid); err != nil || state == 'Z' {
			continue
		}
		if match(strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")) && onOurBus(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// ownsArg matches a testapp started with -name name.
func ownsArg(name string) func([]string) bool {
	return func(argv []string) bool {
		for i := 0; i+1 < len(argv); i++ {
			if argv[i] == "-name" && argv[i+1] == name {
				return true
			}
		}
		return false
	}
}
