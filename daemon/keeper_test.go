package daemon

import (
	"bufio"
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"busmedic/relaunch/control"
	"busmedic/relaunch/control/controltest"
)

// fakeCore stands in for the keeper proper (package keep): the test makes
// it report, as the core does at every change.
type fakeCore struct {
	report func(control.KeptReport)
	mu     sync.Mutex
	cur    control.KeptReport
	served chan struct{} // closed once Serve runs
}

func (c *fakeCore) Serve(ctx context.Context, l *net.UnixListener) error {
	close(c.served)
	<-ctx.Done()
	return l.Close()
}

func (c *fakeCore) Report() control.KeptReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

// set makes r the core's report and reports it.
func (c *fakeCore) set(r control.KeptReport) {
	c.mu.Lock()
	c.cur = r
	c.mu.Unlock()
	c.report(r)
}

// keeperDir is a short directory for a test's sockets (socket paths are
// limited to 107 bytes).
func keeperDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "keeper")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// serveControl serves a stand-in daemon on path until stop is called.
func serveControl(t *testing.T, path string) (d *controltest.Daemon, stop func()) {
	t.Helper()
	d = controltest.NewDaemon(control.Status{})
	srv, err := control.Listen(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, d) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return d, stop
}

// runKeeper runs a keeper with a fake core on dir's sockets; done gets
// RunKeeper's error.
func runKeeper(t *testing.T, ctx context.Context, dir string) (core *fakeCore, done chan error) {
	t.Helper()
	core = &fakeCore{served: make(chan struct{})}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	done = make(chan error, 1)
	go func() {
		done <- RunKeeper(ctx, KeeperConfig{
			Bus: "session", Socket: filepath.Join(dir, "keep-session.sock"), Control: filepath.Join(dir, "control.sock"),
			Address: "unix:path=" + filepath.Join(dir, "bus"), Ready: w, Log: slog.New(slog.DiscardHandler),
			New: func(address func() (string, error), report func(control.KeptReport)) KeeperCore {
				core.report = report
				core.cur = control.KeptReport{Bus: "session", Keeper: os.Getpid(), Apps: []control.KeptApp{}}
				return core
			},
		})
	}()
	line, _ := bufio.NewReader(r).ReadString('\n')
	if strings.TrimSpace(line) != KeeperReady {
		t.Fatalf("keeper said %q on its ready pipe, want %q (error: %v)", line, KeeperReady, <-done)
	}
	<-core.served
	return core, done
}

// next returns the stand-in daemon's next keeper report.
func next(t *testing.T, d *controltest.Daemon) control.KeptReport {
	t.Helper()
	select {
	case r := <-d.Kept():
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no keeper report within 10s")
	}
	return control.KeptReport{}
}

// The keeper tells the daemon what it keeps at every change, with the
// replays once, and all of it again to a daemon that restarted, whose
// absence it waits out.
func TestKeeperReports(t *testing.T) {
	dir := keeperDir(t)
	ctl := filepath.Join(dir, "control.sock")
	d, stop := serveControl(t, ctl)
	ctx, cancel := context.WithCancel(context.Background())
	core, done := runKeeper(t, ctx, dir)

	if r := next(t, d); r.Bus != "session" || len(r.Apps) != 0 {
		t.Fatalf("first report = %+v, want the session bus with nobody kept", r)
	}
	app := control.KeptApp{PID: 42, Command: "dunst", Bus: "session"}
	core.set(control.KeptReport{Bus: "session", Keeper: os.Getpid(), Up: true, Apps: []control.KeptApp{app}})
	for r := next(t, d); len(r.Apps) != 1; r = next(t, d) {
	}
	replay := control.Replay{PID: 42, Command: "dunst", Bus: "session", BusID: "b2", Matches: 3}
	app.Restarts = 1
	core.set(control.KeptReport{Bus: "session", Keeper: os.Getpid(), Up: true, Apps: []control.KeptApp{app}, Replays: []control.Replay{replay}})
	// A report may come twice (once more when the keeper sees the
	// daemon anew), so the one before the replay may still be on its way.
	r := next(t, d)
	for len(r.Replays) == 0 && len(r.Apps) == 1 && r.Apps[0].Restarts == 0 {
		r = next(t, d)
	}
	if len(r.Replays) != 1 || r.Replays[0].BusID != "b2" {
		t.Fatalf("report after the replay = %+v, want the replay", r)
	}

	// The daemon goes away; a replay happens meanwhile; a new daemon
	// gets everything.
	stop()
	replay.BusID, app.Restarts = "b3", 2
	core.set(control.KeptReport{Bus: "session", Keeper: os.Getpid(), Up: true, Apps: []control.KeptApp{app}, Replays: []control.Replay{replay}})
	d2, _ := serveControl(t, ctl)
	// A replay is sent until a daemon said it has it: the one sent as
	// the first daemon stopped may come again (the engine takes each
	// once).
	r = next(t, d2)
	if len(r.Apps) != 1 || r.Apps[0].Restarts != 2 || !slices.ContainsFunc(r.Replays, func(r control.Replay) bool { return r.BusID == "b3" }) {
		t.Fatalf("report to the new daemon = %+v, want the app through 2 restarts and the replay it missed", r)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("RunKeeper: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "keep-session.sock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket outlives the keeper: %v", err)
	}
}

// One keeper per socket: a second says so on its pipe and returns
// ErrRunning.
func TestKeeperOnePerSocket(t *testing.T) {
	dir := keeperDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, done := runKeeper(t, ctx, dir)

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	err = RunKeeper(ctx, KeeperConfig{Bus: "session", Socket: filepath.Join(dir, "keep-session.sock"),
		Control: filepath.Join(dir, "control.sock"), Address: "unix:path=/nonexistent", Ready: w, Log: slog.New(slog.DiscardHandler),
		New: func(func() (string, error), func(control.KeptReport)) KeeperCore {
			t.Error("the second keeper made a core")
			return &fakeCore{}
		}})
	if !errors.Is(err, control.ErrRunning) {
		t.Errorf("second RunKeeper = %v, want ErrRunning", err)
	}
	if line, _ := bufio.NewReader(r).ReadString('\n'); strings.TrimSpace(line) != KeeperRunning {
		t.Errorf("second keeper said %q, want %q", line, KeeperRunning)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("first RunKeeper: %v", err)
	}
}

// The session is over when the keeper's socket is gone and it keeps
// nobody: it exits then, and not before, and leaves a new keeper's
// socket alone.
func TestKeeperEndsWithItsSocket(t *testing.T) {
	dir := keeperDir(t)
	socket := filepath.Join(dir, "keep-session.sock")
	core, done := runKeeper(t, context.Background(), dir)
	core.set(control.KeptReport{Bus: "session", Keeper: os.Getpid(), Up: true, Apps: []control.KeptApp{{PID: 42, Command: "dunst"}}})

	// Replaced (another keeper's, say): not ours to remove.
	if err := os.Remove(socket); err != nil {
		t.Fatal(err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	defer l.Close()
	select {
	case err := <-done:
		t.Fatalf("the keeper exited while it kept an app: %v", err)
	default:
	}
	core.set(control.KeptReport{Bus: "session", Keeper: os.Getpid(), Up: true, Apps: []control.KeptApp{}})
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunKeeper: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the keeper did not exit within 10s of keeping nobody, its socket gone")
	}
	if _, err := os.Stat(socket); err != nil {
		t.Errorf("the keeper removed the socket that replaced its own: %v", err)
	}
}

func TestKeptBusAddress(t *testing.T) {
	const socket = "/run/user/1000/busmedic/keep-session.sock"
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"the session's", map[string]string{"DBUS_SESSION_BUS_ADDRESS": "unix:path=/run/user/1000/bus,guid=abc"}, "unix:path=/run/user/1000/bus"},
		{"not its own socket", map[string]string{"DBUS_SESSION_BUS_ADDRESS": "unix:path=" + socket, "XDG_RUNTIME_DIR": "/run/user/1000"},
			"unix:path=/run/user/1000/bus"},
		{"none set", map[string]string{"XDG_RUNTIME_DIR": "/run/user/7"}, "unix:path=/run/user/7/bus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := keptBusAddress(env(tc.env), socket)
			if err != nil || got != tc.want {
				t.Errorf("keptBusAddress = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	if _, err := keptBusAddress(env(nil), socket); err == nil {
		t.Error("keptBusAddress with no address and no runtime directory: no error")
	}
}

func TestKeepAddress(t *testing.T) {
	for in, want := range map[string]string{
		"/run/user/1000/busmedic/keep-session.sock": "unix:path=/run/user/1000/busmedic/keep-session.sock",
		"/tmp/a b,c=d;e": "unix:path=/tmp/a%20b%2cc%3dd%3be",
	} {
		if got := keepAddress(in); got != want {
			t.Errorf("keepAddress(%q) = %q, want %q", in, got, want)
		}
	}
}

// A keeper killed (SIGKILL) leaves its socket file. A "busmedic keep"
// that comes while the next keeper has taken the lock but does not
// listen yet must wait for it to listen, not take the dead keeper's
// socket (which refuses connections) for the new keeper's.
func TestEnsureKeeperWaitsForTheNewKeeper(t *testing.T) {
	dir := keeperDir(t)
	socket := filepath.Join(dir, "keep-session.sock")
	// The dead keeper's leftovers: its socket file, and its ready file,
	// unlocked.
	dead, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	dead.SetUnlinkOnClose(false)
	dead.Close()
	ready, err := os.OpenFile(readyPath(socket), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer ready.Close()
	// The new keeper has the lock, and is about to listen.
	lock, err := os.OpenFile(socket+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}

	waiting := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		done <- ensureKeeper(context.Background(), socket, func() *exec.Cmd {
			t.Error("a keeper was started while one held the lock")
			return exec.Command("false")
		}, func() { once.Do(func() { close(waiting) }) })
	}()
	select {
	case <-waiting:
	case err := <-done:
		t.Fatalf("EnsureKeeper returned %v while the socket was still the dead keeper's", err)
	case <-time.After(10 * time.Second):
		t.Fatal("EnsureKeeper neither waited nor returned within 10s")
	}
	// The new keeper listens, as RunKeeper does: the dead socket
	// replaced, then the ready lock.
	if err := os.Remove(socket); err != nil {
		t.Fatal(err)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := lockReady(ready); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("EnsureKeeper: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("EnsureKeeper did not return within 10s of the keeper listening")
	}
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatalf("the socket EnsureKeeper agreed to: %v", err)
	}
	c.Close()
}

// A running keeper holds its ready lock, and lets go of it when it
// stops; EnsureKeeper takes it at its word.
func TestKeeperReadyLock(t *testing.T) {
	dir := keeperDir(t)
	socket := filepath.Join(dir, "keep-session.sock")
	ctx, cancel := context.WithCancel(context.Background())
	_, done := runKeeper(t, ctx, dir)
	if listens, known, err := keeperListens(socket); !listens || !known || err != nil {
		t.Fatalf("a running keeper: listens %v, known %v, %v", listens, known, err)
	}
	if err := EnsureKeeper(ctx, socket, func() *exec.Cmd {
		t.Error("a keeper was started while one listened")
		return exec.Command("false")
	}); err != nil {
		t.Fatalf("EnsureKeeper with a keeper running: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if listens, known, err := keeperListens(socket); listens || !known || err != nil {
		t.Fatalf("a stopped keeper: listens %v, known %v, %v", listens, known, err)
	}
}

// Replays dropped for room while a report was on its way were part of that
// report's count: the replays that came after it stay pending.
func TestKeptReporterTrimDuringDelivery(t *testing.T) {
	r := &keptReporter{wake: make(chan struct{}, 1)}
	batch := func(from, n int) control.KeptReport {
		rep := control.KeptReport{Bus: "session"}
		for i := range n {
			rep.Replays = append(rep.Replays, control.Replay{PID: from + i})
		}
		return rep
	}
	r.update(batch(0, maxPendingReplays))
	rep, gen, epoch, trimmed, ok := r.pending()
	if !ok || len(rep.Replays) != maxPendingReplays {
		t.Fatalf("pending: %d replays, %v", len(rep.Replays), ok)
	}
	r.update(batch(maxPendingReplays, 10)) // while the report is on its way
	r.delivered(gen, epoch, trimmed, len(rep.Replays))
	rep, _, _, _, ok = r.pending()
	var pids []int
	for _, rp := range rep.Replays {
		pids = append(pids, rp.PID)
	}
	if !ok || len(pids) != 10 || pids[0] != maxPendingReplays {
		t.Errorf("after delivery: replays of pids %v pending; want the 10 that came after (from %d)", pids, maxPendingReplays)
	}
}
