package control_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"busmedic/relaunch/control"
	"busmedic/relaunch/control/controltest"
	"busmedic/watcher"
)

const deadline = 10 * time.Second

// backend is a stand-in engine: the control socket is tested on its own
// here; the daemon's tests drive it with the real engine.
type backend struct{ *controltest.Daemon }

func newBackend() *backend {
	return &backend{controltest.NewDaemon(control.Status{
		Buses: []control.BusStatus{{Name: "session", Up: true, ID: "abc"}},
		Apps:  []control.AppStatus{{ID: "panel", Enabled: true, Running: true, PIDs: []int{77}, Bus: "session"}},
	})}
}

func (b *backend) History(n int) ([]control.Recovery, error) {
	return []control.Recovery{{Bus: "session", OldID: "a", ID: "b"}}[:min(n, 1)], nil
}
func (b *backend) RelaunchNow(ctx context.Context, id string) (control.Job, error) {
	if id == "nope" {
		return control.Job{App: id, Outcome: control.Failed, Reason: "no rule or casualty nope"}, fmt.Errorf("relaunch nope: %w", control.ErrUnknownApp)
	}
	return control.Job{App: id, Outcome: control.Relaunched, PID: 42}, nil
}
func (b *backend) Reload() error { return nil }
func (b *backend) RestartBus(ctx context.Context, bus string) error {
	if bus != "session" {
		return &control.RestartRefusal{Bus: bus, PID: 1, Unit: "init.scope", Reason: "the system bus daemon (pid 1) runs in init.scope"}
	}
	return nil
}
func (b *backend) Learn(id string) (string, error) {
	if id == "broken" {
		return "", errors.New("rules file: permission denied")
	}
	return "rule-" + id, nil
}
func (b *backend) DryRun(bus string) ([]control.PlannedJob, error) {
	return []control.PlannedJob{{App: "dunst", Bus: bus, Command: []string{"dunst"}}}, nil
}
func (b *backend) Peers() map[string][]watcher.Peer {
	return map[string][]watcher.Peer{"session": {{UniqueName: ":1.1", PID: 7, Names: []string{"org.example.A"}}}}
}
func (b *backend) Pause()  { b.Set(func(s *control.Status) { s.Paused = true }) }
func (b *backend) Resume() { b.Set(func(s *control.Status) { s.Paused = false }) }

// serve starts a control server on a temporary socket for the test.
func serve(t *testing.T, b control.Backend) string { return controltest.Serve(t, b) }

func dial(t *testing.T, path string) *control.Client {
	t.Helper()
	c, err := control.Dial(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRequests(t *testing.T) {
	b := newBackend()
	path := serve(t, b)
	c := dial(t, path)
	ctx := t.Context()

	st, err := c.Status(ctx)
	if err != nil || len(st.Buses) != 1 || st.Buses[0].ID != "abc" {
		t.Fatalf("Status = %+v, %v", st, err)
	}
	if h, err := c.History(ctx, 5); err != nil || len(h) != 1 || h[0].ID != "b" {
		t.Errorf("History = %+v, %v", h, err)
	}
	if job, err := c.Relaunch(ctx, "dunst", false); err != nil || job.Outcome != control.Relaunched || job.PID != 42 {
		t.Errorf("Relaunch = %+v, %v", job, err)
	}
	if job, err := c.Relaunch(ctx, "nope", false); err == nil || job.Reason == "" {
		t.Errorf("Relaunch(nope) = %+v, %v; want the failure and its reason", job, err)
	}
	if err := c.RestartBus(ctx, "session"); err != nil {
		t.Errorf("RestartBus: %v", err)
	}
	if err := c.RestartBus(ctx, "system"); err == nil {
		t.Error("RestartBus(system) did not pass on the failure")
	}
	if id, err := c.Learn(ctx, "c1"); err != nil || id != "rule-c1" {
		t.Errorf("Learn = %q, %v", id, err)
	}
	if plan, err := c.Plan(ctx, "session"); err != nil || len(plan) != 1 || plan[0].Command[0] != "dunst" {
		t.Errorf("Plan = %+v, %v", plan, err)
	}
	if peers, err := c.Peers(ctx); err != nil || len(peers["session"]) != 1 || !peers["session"][0].Owns("org.example.A") {
		t.Errorf("Peers = %+v, %v", peers, err)
	}
	if err := c.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.Status(ctx); !st.Paused {
		t.Error("not paused after Pause")
	}
	// The tray child's report reaches the status (as the stand-in puts
	// it, like the daemon); a notice reaches the backend.
	if err := c.ReportTray(ctx, control.TrayHost{Watcher: false}); err != nil {
		t.Fatal(err)
	}
	if st, _ := c.Status(ctx); st.Tray.Problem() != control.NoTrayHost {
		t.Errorf("status tray %+v after a report of no watcher", st.Tray)
	}
	if err := c.Notify(ctx, control.Notice{Title: "busmedic: Pause failed", Body: "why", Critical: true}); err != nil {
		t.Fatal(err)
	}
	if n := <-b.Notices(); n != (control.Notice{Title: "busmedic: Pause failed", Body: "why", Critical: true}) {
		t.Errorf("notice %+v", n)
	}
	if err := c.Notify(ctx, control.Notice{}); !errors.Is(err, control.ErrBadRequest) {
		t.Errorf("Notify without a title: %v, want ErrBadRequest", err)
	}

	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, %v; want 0600", info.Mode(), err)
	}
	dir, _ := os.Stat(filepath.Dir(path))
	if dir.Mode().Perm() != 0o700 {
		t.Errorf("socket directory mode %v, want 0700", dir.Mode())
	}
}

// TestErrors checks that an error crosses the socket as what it is:
// errors.Is and errors.As find on the client what the daemon had, and the
// message is the daemon's.
func TestErrors(t *testing.T) {
	c := dial(t, serve(t, newBackend()))
	ctx := t.Context()

	_, err := c.Relaunch(ctx, "nope", false)
	if !errors.Is(err, control.ErrUnknownApp) || err.Error() != "relaunch nope: no such app or casualty" {
		t.Errorf("Relaunch(nope) = %v; want ErrUnknownApp with the daemon's message", err)
	}
	// A running app is not stopped without leave: the client can ask.
	_, err = c.Relaunch(ctx, "panel", false)
	if !errors.Is(err, control.ErrAppRunning) || err.Error() != "panel is running (pid 77) on the session bus: relaunching it would stop it and start it again" {
		t.Errorf("Relaunch(panel) of a running app = %v; want ErrAppRunning saying where it runs", err)
	}
	if job, err := c.Relaunch(ctx, "panel", true); err != nil || job.Outcome != control.Relaunched {
		t.Errorf("Relaunch(panel, force) = %+v, %v", job, err)
	}
	err = c.RestartBus(ctx, "system")
	var why *control.RestartRefusal
	if !errors.Is(err, control.ErrCannotRestart) || !errors.As(err, &why) {
		t.Fatalf("RestartBus(system) = %v; want ErrCannotRestart and the refusal", err)
	}
	if *why != (control.RestartRefusal{Bus: "system", PID: 1, Unit: "init.scope", Reason: "the system bus daemon (pid 1) runs in init.scope"}) ||
		err.Error() != "cannot restart the bus: the system bus daemon (pid 1) runs in init.scope" {
		t.Errorf("refusal %+v, message %q", why, err)
	}
	for name, err := range map[string]error{
		"no such bus":  c.RestartBus(ctx, "mars"),
		"no app id":    func() error { _, err := c.Relaunch(ctx, "", false); return err }(),
		"plan of mars": func() error { _, err := c.Plan(ctx, "mars"); return err }(),
	} {
		if !errors.Is(err, control.ErrBadRequest) {
			t.Errorf("%s: %v; want ErrBadRequest", name, err)
		}
	}
	// A failure with no code of its own is an error all the same, and
	// none of the above.
	_, err = c.Learn(ctx, "broken")
	if err == nil || err.Error() != "rules file: permission denied" {
		t.Errorf("Learn(broken) = %v; want the daemon's error", err)
	}
	for _, kind := range []error{control.ErrUnknownApp, control.ErrCannotRestart, control.ErrBadRequest, control.ErrTooManyClients, control.ErrNotRunning} {
		if errors.Is(err, kind) {
			t.Errorf("Learn(broken) = %v matches %v", err, kind)
		}
	}
	// The connection serves on after failed requests.
	if _, err := c.Status(ctx); err != nil {
		t.Errorf("Status after the failures: %v", err)
	}
}

func TestWatch(t *testing.T) {
	b := newBackend()
	path := serve(t, b)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	updates, err := dial(t, path).Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	next := func() control.Status {
		t.Helper()
		select {
		case st, ok := <-updates:
			if !ok {
				t.Fatal("watch ended")
			}
			return st
		case <-time.After(deadline):
			t.Fatal("no status update")
		}
		return control.Status{}
	}
	if st := next(); st.Paused {
		t.Fatal("first status paused")
	}
	// A change made through another client reaches the watcher.
	if err := dial(t, path).Pause(ctx); err != nil {
		t.Fatal(err)
	}
	for !next().Paused {
	}
}

func TestOneDaemonPerUser(t *testing.T) {
	path := serve(t, newBackend())
	if _, err := control.Listen(path, nil); !errors.Is(err, control.ErrRunning) {
		t.Fatalf("second Listen = %v, want ErrRunning", err)
	}
}

func TestNotRunning(t *testing.T) {
	if _, err := control.Dial(t.Context(), filepath.Join(t.TempDir(), "none.sock")); !errors.Is(err, control.ErrNotRunning) {
		t.Errorf("Dial with no daemon = %v, want ErrNotRunning", err)
	}
}

func TestStaleSocket(t *testing.T) {
	// A daemon killed with SIGKILL leaves its socket file behind.
	path := filepath.Join(t.TempDir(), "control.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := control.Dial(t.Context(), path); !errors.Is(err, control.ErrNotRunning) {
		t.Errorf("Dial on a stale socket = %v, want ErrNotRunning", err)
	}
	srv, err := control.Listen(path, nil)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, newBackend()) }()
	if _, err := dial(t, path).Status(ctx); err != nil {
		t.Errorf("Status: %v", err)
	}
	cancel()
	<-done
}

// slowBackend holds every relaunch until the test lets it go.
type slowBackend struct {
	*backend
	started, release chan struct{}
}

func (b slowBackend) RelaunchNow(ctx context.Context, id string) (control.Job, error) {
	b.started <- struct{}{}
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return b.backend.RelaunchNow(ctx, id)
}

// TestRequestsMeanwhile checks that one client serves a request while
// another of its requests, or its watch, is under way.
func TestRequestsMeanwhile(t *testing.T) {
	b := slowBackend{newBackend(), make(chan struct{}), make(chan struct{})}
	c := dial(t, serve(t, b))
	ctx := t.Context()

	updates, err := c.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st := <-updates; st.Paused {
		t.Fatal("paused at first")
	}
	relaunched := make(chan error, 1)
	go func() {
		_, err := c.Relaunch(ctx, "dunst", false)
		relaunched <- err
	}()
	<-b.started
	if err := c.Pause(ctx); err != nil {
		t.Fatalf("Pause during a relaunch and a watch: %v", err)
	}
	for st := range updates {
		if st.Paused {
			break
		}
	}
	close(b.release)
	if err := <-relaunched; err != nil {
		t.Errorf("Relaunch: %v", err)
	}
}

// TestKeptConnection checks that a client whose kept connection the
// daemon closed, for idleness or because it restarted, sends its next
// request again on a new one.
func TestKeptConnection(t *testing.T) {
	t.Run("closed idle", func(t *testing.T) {
		srv, _ := listen(t, newBackend(), control.Limits{IdleTimeout: 100 * time.Millisecond})
		c := dial(t, srv.Path())
		if _, err := c.Status(t.Context()); err != nil {
			t.Fatal(err)
		}
		// A connection made after the client's last request is closed
		// for idleness; the client's, idle for longer, is closed too.
		if msg := rawDial(t, srv.Path()).closedAfter(t); !strings.Contains(msg, "no request for") {
			t.Fatalf("idle connection told %q", msg)
		}
		if _, err := c.Status(t.Context()); err != nil {
			t.Errorf("Status after the daemon closed the idle connection: %v", err)
		}
	})
	t.Run("daemon restarted", func(t *testing.T) {
		path := filepath.Join(shortTempDir(t), "control.sock")
		stop := serveAt(t, path, newBackend())
		c := control.NewClient(path)
		t.Cleanup(func() { c.Close() })
		if _, err := c.Status(t.Context()); err != nil {
			t.Fatal(err)
		}
		stop()
		if _, err := c.Status(t.Context()); !errors.Is(err, control.ErrNotRunning) {
			t.Errorf("Status with the daemon gone = %v, want ErrNotRunning", err)
		}
		serveAt(t, path, newBackend())
		if _, err := c.Status(t.Context()); err != nil {
			t.Errorf("Status from the new daemon: %v", err)
		}
	})
}

// TestFollow follows a daemon that starts late, stops and starts again.
func TestFollow(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "control.sock")
	type report struct {
		st  *control.Status
		err error
	}
	reports := make(chan report)
	ctx, cancel := context.WithCancel(t.Context())
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		control.NewClient(path).Follow(ctx, func(st *control.Status, err error) {
			select {
			case reports <- report{st, err}:
			case <-ctx.Done():
			}
		})
	}()
	next := func(want string) report {
		t.Helper()
		select {
		case r := <-reports:
			return r
		case <-time.After(deadline):
			t.Fatalf("no report of %s", want)
		}
		return report{}
	}
	// awaitStatus skips the reports of the daemon not running, which
	// repeat until it answers.
	awaitStatus := func() *control.Status {
		t.Helper()
		for {
			r := next("a status")
			if r.st != nil && r.err == nil {
				return r.st
			}
			if !errors.Is(r.err, control.ErrNotRunning) {
				t.Fatalf("report %+v, want a status or ErrNotRunning", r)
			}
		}
	}

	if r := next("no daemon"); r.st != nil || !errors.Is(r.err, control.ErrNotRunning) {
		t.Fatalf("first report with no daemon: %+v, want ErrNotRunning", r)
	}
	stop := serveAt(t, path, newBackend())
	awaitStatus()
	stop()
	if r := next("the daemon gone"); r.st != nil || !errors.Is(r.err, control.ErrNotRunning) {
		t.Fatalf("report with the daemon gone: %+v, want ErrNotRunning", r)
	}
	b := newBackend()
	b.Pause()
	serveAt(t, path, b)
	if st := awaitStatus(); !st.Paused {
		t.Error("status not from the new daemon")
	}
	cancel()
	select {
	case <-followed:
	case <-time.After(deadline):
		t.Fatal("Follow did not return when its context ended")
	}
}

// shortTempDir is a temporary directory with a path short enough for a
// socket (at most 107 bytes), which t.TempDir is not with long test names.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "control")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// serveAt serves b on a control socket at path until stop is called or
// the test ends; stop returns once the server is gone.
func serveAt(t *testing.T, path string, b control.Backend) (stop func()) {
	t.Helper()
	srv, err := control.Listen(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, b) }()
	stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	t.Cleanup(stop)
	return stop
}
