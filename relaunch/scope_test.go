package relaunch

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"busmedic/relaunch/control"
	"busmedic/watcher/bustest"
)

// scopeCall is one scope the engine asked the user manager for.
type scopeCall struct {
	name, description string
	pid               int
	// unreaped: the process was still in /proc (running, or a zombie
	// busmedic had not reaped) when the manager was asked.
	unreaped bool
	// wait is how long the engine gave the manager, from the call.
	wait time.Duration
}

// fakeScopes stands in for the user manager of a session whose apps have
// no units: it only makes scopes, answering as answer says for each.
type fakeScopes struct {
	answer func(ctx context.Context, name string) (string, error)

	mu    sync.Mutex
	calls []scopeCall
	dials int
}

func (f *fakeScopes) option(c *Config, _ *bustest.Bus) {
	c.UserManager = "/fake/systemd/private"
	c.dialUnits = func(context.Context, string) (unitManager, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.dials++
		return f, nil
	}
}

func (f *fakeScopes) close() {}

func (f *fakeScopes) state(context.Context, string) (unitState, error) {
	return unitState{}, errors.New("fakeScopes has no units")
}

func (f *fakeScopes) run(context.Context, string, bool) (string, error) {
	return "", errors.New("fakeScopes has no units")
}

func (f *fakeScopes) scope(ctx context.Context, name string, pid int, description string) (string, error) {
	_, _, err := procStat(pid)
	c := scopeCall{name: name, description: description, pid: pid, unreaped: err == nil}
	if d, ok := ctx.Deadline(); ok {
		c.wait = time.Until(d)
	}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()
	if f.answer == nil {
		return "done", nil
	}
	return f.answer(ctx, name)
}

func (f *fakeScopes) scopes() []scopeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]scopeCall(nil), f.calls...)
}

func (f *fakeScopes) dialed() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dials
}

// callFor returns the call whose scope name starts with prefix.
func callFor(t *testing.T, calls []scopeCall, prefix string) scopeCall {
	t.Helper()
	for _, c := range calls {
		if strings.HasPrefix(c.name, prefix) {
			return c
		}
	}
	t.Fatalf("no scope %s… asked for; asked: %+v", prefix, calls)
	return scopeCall{}
}

// An app busmedic relaunches, and a hook it runs, are each put into a
// scope of their own named after the rule (escaped) and the pid, while
// the pid is still theirs.
func TestStartedProcessesGetScopes(t *testing.T) {
	f := &fakeScopes{}
	h := newHarness(t, `
[[app]]
id = "scoped-app"
names = ["org.example.Scoped"]
exec = ["TESTAPP", "-name", "org.example.Scoped", "-mode", "exit"]
grace = "50ms"

[[app]]
id = "hooked"
names = ["org.example.Hooked"]
action = "hook"
hook = ["/bin/sh", "-c", "TESTAPP -name org.example.Hooked -mode exit & exit 0"]
grace = "50ms"
`, f.option)
	h.bus.StartApp("-name", "org.example.Scoped", "-mode", "exit")
	h.bus.StartApp("-name", "org.example.Hooked", "-mode", "exit")
	h.waitOwner("org.example.Scoped", 0)
	old := h.waitOwner("org.example.Hooked", 0)
	rec := h.crash()
	j := jobOf(t, rec, "scoped-app")
	if j.Outcome != control.Relaunched {
		t.Fatalf("scoped-app: %s %q", j.Outcome, j.Reason)
	}
	if j := jobOf(t, rec, "hooked"); j.Outcome != control.Hooked {
		t.Errorf("hooked: %s %q", j.Outcome, j.Reason)
	}
	// The hook's app is no child of the engine's: the harness does not end it.
	pid := h.waitOwner("org.example.Hooked", old)
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	calls := f.scopes()
	if len(calls) != 2 {
		t.Errorf("%d scopes asked for, want 2: %+v", len(calls), calls)
	}
	app := callFor(t, calls, `app-busmedic-scoped\x2dapp-`)
	if want := `app-busmedic-scoped\x2dapp-` + strconv.Itoa(j.PID) + ".scope"; app.name != want || app.pid != j.PID {
		t.Errorf("scope %q for pid %d, want %q for the started pid %d", app.name, app.pid, want, j.PID)
	}
	if app.description != "scoped-app, started by busmedic" {
		t.Errorf("scope description %q", app.description)
	}
	hook := callFor(t, calls, "app-busmedic-hooked-")
	if hook.name != "app-busmedic-hooked-"+strconv.Itoa(hook.pid)+".scope" || !strings.HasPrefix(hook.description, "hook of hooked") {
		t.Errorf("hook's scope %q (%q) for pid %d", hook.name, hook.description, hook.pid)
	}
	for _, c := range calls {
		if !c.unreaped {
			t.Errorf("scope %s asked for after pid %d was reaped: the pid could have named another process", c.name, c.pid)
		}
		if c.wait <= 0 || c.wait > scopeWait {
			t.Errorf("scope %s: the manager was given %s, want at most %s", c.name, c.wait, scopeWait)
		}
	}
}

// A manager that refuses the scope, or does not answer, costs the
// recovery nothing but the bounded wait: the app is relaunched all the
// same, in busmedic's cgroup, and the connection, which works, is kept.
func TestScopeTroubleDoesNotFailRecovery(t *testing.T) {
	f := &fakeScopes{answer: func(ctx context.Context, name string) (string, error) {
		if strings.Contains(name, "refused") {
			return "", dbus.Error{Name: "org.freedesktop.systemd1.UnitExists", Body: []any{"Unit " + name + " already exists."}}
		}
		<-ctx.Done() // a manager that is stuck
		return "", context.Cause(ctx)
	}}
	h := newHarness(t, `
[[app]]
id = "refused"
names = ["org.example.Refused"]
exec = ["TESTAPP", "-name", "org.example.Refused", "-mode", "exit"]
grace = "50ms"

[[app]]
id = "stuck"
names = ["org.example.Stuck"]
exec = ["TESTAPP", "-name", "org.example.Stuck", "-mode", "exit"]
grace = "50ms"
`, f.option)
	h.bus.StartApp("-name", "org.example.Refused", "-mode", "exit")
	h.bus.StartApp("-name", "org.example.Stuck", "-mode", "exit")
	h.waitOwner("org.example.Refused", 0)
	h.waitOwner("org.example.Stuck", 0)
	rec := h.crash()
	for _, app := range []string{"refused", "stuck"} {
		if j := jobOf(t, rec, app); j.Outcome != control.Relaunched || j.Reason != "" && strings.Contains(j.Reason, "scope") {
			t.Errorf("%s: %s %q, want relaunched with nothing said of the scope", app, j.Outcome, j.Reason)
		}
	}
	if n := len(f.scopes()); n != 2 {
		t.Errorf("%d scopes asked for, want 2", n)
	}
	if n := f.dialed(); n != 1 {
		t.Errorf("the user manager was dialed %d times, want once: its answers are no reason to drop the connection", n)
	}
}

// The wait for an app's scope holds no start slot: with one slot and a
// user manager that is slow to make the first scope asked for, the other
// app starts (and asks for its scope) meanwhile, not after that wait.
func TestScopeWaitHoldsNoStartSlot(t *testing.T) {
	var mu sync.Mutex
	asked := 0
	another := make(chan struct{})
	overlapped := make(chan bool, 1) // whether the other app started during the first wait
	f := &fakeScopes{answer: func(ctx context.Context, name string) (string, error) {
		mu.Lock()
		asked++
		n := asked
		mu.Unlock()
		if n == 2 {
			close(another)
		}
		if n != 1 {
			return "done", nil
		}
		select {
		case <-another:
			overlapped <- true
			return "done", nil
		case <-ctx.Done():
			overlapped <- false
			return "", context.Cause(ctx)
		}
	}}
	oneSlot := func(c *Config, _ *bustest.Bus) { c.Concurrency = 1 }
	h := newHarness(t, `
[[app]]
id = "one"
names = ["org.example.One"]
exec = ["TESTAPP", "-name", "org.example.One", "-mode", "exit"]
grace = "50ms"

[[app]]
id = "two"
names = ["org.example.Two"]
exec = ["TESTAPP", "-name", "org.example.Two", "-mode", "exit"]
grace = "50ms"
`, f.option, oneSlot)
	h.bus.StartApp("-name", "org.example.One", "-mode", "exit")
	h.bus.StartApp("-name", "org.example.Two", "-mode", "exit")
	h.waitOwner("org.example.One", 0)
	h.waitOwner("org.example.Two", 0)
	rec := h.crash()
	for _, app := range []string{"one", "two"} {
		if j := jobOf(t, rec, app); j.Outcome != control.Relaunched {
			t.Errorf("%s: %s %q, want relaunched", app, j.Outcome, j.Reason)
		}
	}
	if !<-overlapped {
		t.Error("the second app started only after the first app's scope wait ran out: that wait held the one start slot")
	}
}

// A scope is named after the rule, or after the program of an app known
// by its process, not after its casualty id.
func TestScopeApp(t *testing.T) {
	for app, want := range map[string]string{
		"dunst":                 "dunst",
		"xfce4-panel":           "xfce4-panel",
		"casualty:dunst:1234":   "dunst",
		"kept:dbus-test-tool:7": "dbus-test-tool",
		"casualty:pid:42":       "pid",
	} {
		if got := scopeApp(app); got != want {
			t.Errorf("scopeApp(%q) = %q, want %q", app, got, want)
		}
	}
}

// A dial of the user manager under way holds up no other caller past that
// caller's own context (a scope's wait is a second; the dial may be a
// job's, with no end), and a caller that waited dials anew if that dial
// failed.
func TestUserManagerDialHoldsNoOne(t *testing.T) {
	dials := make(chan int, 4)
	var mu sync.Mutex
	n := 0
	e := &Engine{}
	e.cfg.UserManager = "/fake/systemd/private"
	e.cfg.dialUnits = func(ctx context.Context, _ string) (unitManager, error) {
		mu.Lock()
		n++
		this := n
		mu.Unlock()
		dials <- this
		if this == 1 {
			<-ctx.Done() // a manager that does not answer
			return nil, context.Cause(ctx)
		}
		return &fakeScopes{}, nil
	}
	first, cancelFirst := context.WithCancel(context.Background())
	defer cancelFirst()
	firstDone := make(chan error, 1)
	go func() {
		_, err := e.userManager(first)
		firstDone <- err
	}()
	if d := <-dials; d != 1 {
		t.Fatalf("dial %d first", d)
	}

	gone, cancel := context.WithCancel(context.Background())
	cancel()
	returned := make(chan error, 1)
	go func() {
		_, err := e.userManager(gone)
		returned <- err
	}()
	select {
	case err := <-returned:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("userManager with its context ended, during another dial: %v, want its context's error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("userManager waited for another caller's dial past its own context")
	}

	third := make(chan unitManager, 1)
	go func() {
		m, _ := e.userManager(context.Background())
		third <- m
	}()
	cancelFirst()
	if err := <-firstDone; err == nil {
		t.Error("the dial of a manager that did not answer succeeded")
	}
	select {
	case m := <-third:
		if m == nil {
			t.Error("the caller that waited got no connection: it did not dial anew")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the caller that waited for the failed dial got nothing")
	}
}
