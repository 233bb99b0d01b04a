package editor

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"

	"busmedic/appdb"
	"busmedic/relaunch/control"
	"busmedic/relaunch/control/controltest"
	"busmedic/watcher"
)

const deadline = 10 * time.Second

// queue stands in for fyne.Do: the editor's goroutines queue their results
// and the test runs them on its own goroutine, as the event loop would, so
// that widgets are touched by one goroutine only.
type queue struct {
	mu    sync.Mutex
	fns   []func()
	ready chan struct{}
}

func newQueue() *queue { return &queue{ready: make(chan struct{}, 1)} }

func (q *queue) post(fn func()) {
	q.mu.Lock()
	q.fns = append(q.fns, fn)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *queue) run() {
	q.mu.Lock()
	fns := q.fns
	q.fns = nil
	q.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// waitFor runs the queued results until cond holds, failing after the
// deadline.
func (q *queue) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	timeout := time.NewTimer(deadline)
	defer timeout.Stop()
	for {
		q.run()
		if cond() {
			return
		}
		select {
		case <-q.ready:
		case <-timeout.C:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// writeRules writes a rules file the way a user would: mode 0600.
func writeRules(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// userRules is a user file with comments, settings and two rules.
const userRules = `# my rules: keep this comment
version = 1

[settings]
idle_minutes = 7

# the notification daemon
[[app]]
id = "dunst"
name = "Dunst"
names = ["org.freedesktop.Notifications"]
grace = "1s"

[[app]]
id = "panel"
exe = "/usr/bin/xfce4-panel"
action = "signal"
signal = "SIGHUP"
`

// fixture is an editor on temporary rules files.
type fixture struct {
	ed     *editor
	q      *queue
	user   string
	system string
}

type fixtureOpts struct {
	user, system string // file contents; "" leaves the file absent
	control      string // socket path; "" for one where nothing listens
	iconTheme    string // Options.IconTheme
}

func newFixture(t *testing.T, o fixtureOpts) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{q: newQueue(),
		user:   filepath.Join(dir, "home", "busmedic", "apps.toml"),
		system: filepath.Join(dir, "etc", "busmedic", "apps.toml"),
	}
	if o.user != "" {
		writeRules(t, f.user, o.user)
	}
	if o.system != "" {
		writeRules(t, f.system, o.system)
	}
	if o.control == "" {
		o.control = filepath.Join(dir, "none.sock")
	}
	app := test.NewTempApp(t)
	f.ed = newEditor(t.Context(), app, Options{
		Paths:       appdb.Paths{User: f.user, System: []string{f.system}},
		ControlPath: o.control,
		Logger:      slog.New(slog.DiscardHandler),
		IconTheme:   o.iconTheme,
		post:        f.q.post,
	})
	f.ed.Window().Show()
	t.Cleanup(func() { f.ed.Window().Close() })
	return f
}

// selectRule picks the list row of the rule id.
func (f *fixture) selectRule(t *testing.T, id string) {
	t.Helper()
	for i, en := range f.ed.entries {
		if en.Rule.ID == id {
			f.ed.list.Select(i)
			return
		}
	}
	t.Fatalf("no rule %q in the list", id)
}

// backend is a stand-in daemon behind a real control socket.
type backend struct {
	*controltest.Daemon
	mu      sync.Mutex
	asked   []string
	history int // History calls
	// hold, if not nil, holds each relaunch until it is closed; held
	// gets a value as each relaunch is held.
	hold, held chan struct{}
}

func newBackend() *backend {
	return &backend{Daemon: controltest.NewDaemon(control.Status{
		Buses: []control.BusStatus{{Name: "session", Up: true, ID: "abc"}},
		Apps: []control.AppStatus{{ID: "dunst", Name: "Dunst", Bus: "session", Action: "relaunch", Enabled: true,
			Running: true, PIDs: []int{4242},
			Last: &control.Job{App: "dunst", Outcome: control.Relaunched, Took: 340 * time.Millisecond, PID: 4242}}},
		Casualties: []control.Casualty{{ID: "c1", Bus: "session", At: time.Now(), Peer: watcher.Peer{
			UniqueName: ":1.9", PID: 99, UID: os.Getuid(), Exe: "/usr/bin/blueman-applet",
			Argv: []string{"/usr/bin/blueman-applet"}, Names: []string{"org.blueman.Applet"}, Cwd: "/"}}},
	})}
}

func (b *backend) History(n int) ([]control.Recovery, error) {
	b.mu.Lock()
	b.history++
	b.mu.Unlock()
	t0 := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	return []control.Recovery{
		{Bus: "session", OldID: "a", ID: "b", Downtime: 1200 * time.Millisecond, Started: t0, Ended: t0.Add(2 * time.Second),
			Jobs: []control.Job{{App: "dunst", Action: "relaunch", Outcome: control.Relaunched, PID: 7, Took: 800 * time.Millisecond}}},
		{Bus: "system", OldID: "b", ID: "c", Started: t0.Add(time.Hour), Ended: t0.Add(time.Hour + time.Second),
			Jobs: []control.Job{{App: "panel", Action: "signal", Outcome: control.Failed, Reason: "no such process"}}},
	}, nil
}

func (b *backend) RelaunchNow(ctx context.Context, id string) (control.Job, error) {
	b.mu.Lock()
	b.asked = append(b.asked, id)
	hold, held := b.hold, b.held
	b.mu.Unlock()
	if hold != nil {
		select {
		case held <- struct{}{}:
		default:
		}
		select {
		case <-hold:
		case <-ctx.Done():
			return control.Job{}, ctx.Err()
		}
	}
	return control.Job{App: id, Outcome: control.Relaunched, PID: 4343, Took: 250 * time.Millisecond}, nil
}

func (b *backend) Reload() error                                    { return nil }
func (b *backend) RestartBus(ctx context.Context, bus string) error { return nil }
func (b *backend) Learn(id string) (string, error)                  { return "rule-" + id, nil }

func (b *backend) DryRun(bus string) ([]control.PlannedJob, error) {
	if bus != "session" {
		return nil, nil
	}
	r := appdb.NewRule("dunst")
	r.Grace = time.Second
	return []control.PlannedJob{{App: "dunst", Bus: bus, Rule: r, Peers: []watcher.Peer{{PID: 4242}},
		Command: []string{"/usr/bin/dunst", "-verbosity", "crit"}, Dir: "/home/ada"}}, nil
}

func (b *backend) Peers() map[string][]watcher.Peer {
	return map[string][]watcher.Peer{
		"session": {
			{UniqueName: ":1.1", PID: 0},
			{UniqueName: ":1.5", PID: 1234, UID: os.Getuid(), Exe: "/usr/bin/nm-applet",
				Argv: []string{"nm-applet", "--indicator"}, Names: []string{"org.freedesktop.network-manager-applet"}, Cwd: "/home/ada"},
		},
		"system": {{UniqueName: ":1.2", PID: 1, UID: 0, Exe: "/usr/lib/systemd/systemd", Argv: []string{"/sbin/init"}}},
	}
}

func (b *backend) historyCalls() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.history
}

func (b *backend) Pause()  {}
func (b *backend) Resume() {}

// serve starts a control server with b on a temporary socket.
func serve(t *testing.T, b control.Backend) string { return controltest.Serve(t, b) }

type stoppable struct {
	path string
	stop func()
}

// serveStoppable is serve with a stop the test calls.
func serveStoppable(t *testing.T, b control.Backend) stoppable {
	t.Helper()
	path := filepath.Join(t.TempDir(), "busmedic", "control.sock")
	srv, err := control.Listen(path, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, b) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stoppable{path: path, stop: stop}
}
