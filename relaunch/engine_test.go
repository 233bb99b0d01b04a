package relaunch

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"busmedic/relaunch/control"
	"busmedic/watcher"
	"busmedic/watcher/bustest"
)

const fixtureRules = `
[[app]]
id = "exiter"
names = ["org.example.Exiter"]
exec = ["TESTAPP", "-name", "org.example.Exiter", "-mode", "exit"]
grace = "200ms"

[[app]]
id = "deaf"
names = ["org.example.Deaf"]
exec = ["TESTAPP", "-name", "org.example.Deaf", "-mode", "deaf"]
grace = "200ms"
stop_timeout = "300ms"

[[app]]
id = "reconnector"
names = ["org.example.Reconnector"]
exec = ["TESTAPP", "-name", "org.example.Reconnector", "-mode", "reconnect"]
grace = "3s"

[[app]]
id = "needy"
names = ["org.example.Needy"]
exec = ["TESTAPP", "-name", "org.example.Needy", "-mode", "exit", "-after", "org.example.Exiter"]
after = ["org.example.Exiter"]
grace = "200ms"
`

var fixtureNames = []string{"org.example.Exiter", "org.example.Deaf", "org.example.Reconnector", "org.example.Needy"}

// Each exiting or deaf app is back exactly once after a SIGTERM and after a
// SIGKILL restart; the app that reconnects by itself is not touched; the app
// that needs another's name is started after it.
func TestRecoveryAfterRestart(t *testing.T) {
	h := newHarness(t, fixtureRules)
	h.bus.StartApp("-name", "org.example.Exiter", "-mode", "exit")
	deaf := h.bus.StartApp("-name", "org.example.Deaf", "-mode", "deaf")
	reconnector := h.bus.StartApp("-name", "org.example.Reconnector", "-mode", "reconnect")
	h.bus.StartApp("-name", "org.example.Needy", "-mode", "exit", "-after", "org.example.Exiter")
	before := map[string]int{}
	for _, n := range fixtureNames {
		before[n] = h.waitOwner(n, 0)
	}

	for _, tc := range []struct {
		name    string
		restart func()
	}{
		{"SIGTERM", func() { h.bus.Stop(); h.bus.Start() }},
		{"SIGKILL", func() { h.bus.Kill(); h.bus.Start() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.t = t
			tc.restart()
			id := h.waitUp()
			rec := h.waitRecovery(id)
			for _, app := range []string{"exiter", "deaf", "needy"} {
				if j := jobOf(t, rec, app); j.Outcome != control.Relaunched {
					t.Errorf("%s: outcome %s (%s), want relaunched", app, j.Outcome, j.Reason)
				}
			}
			if j := jobOf(t, rec, "reconnector"); j.Outcome != control.Reconnected {
				t.Errorf("reconnector: outcome %s (%s), want reconnected", j.Outcome, j.Reason)
			}
			// after: needy started only once exiter was back (the testapp
			// exits 3 otherwise, which would have failed the job).
			ex, nd := jobOf(t, rec, "exiter"), jobOf(t, rec, "needy")
			if nd.Started.Add(nd.Took).Before(ex.Started) {
				t.Errorf("needy ended before exiter started")
			}
			for _, n := range fixtureNames {
				pid := h.waitOwner(n, 0)
				if procs := countProcs(t, ownsArg(n)); len(procs) != 1 || procs[0] != pid {
					t.Errorf("%s: processes %v, want exactly the owner %d", n, procs, pid)
				}
				if n != "org.example.Reconnector" && pid == before[n] {
					t.Errorf("%s: still owned by pid %d from before the restart", n, pid)
				}
				before[n] = pid
			}
			if got := h.owner("org.example.Reconnector"); got != reconnector.PID() {
				t.Errorf("reconnector: owner pid %d, want the original %d (not touched)", got, reconnector.PID())
			}
		})
		h.t = t
	}
	select {
	case <-deaf.Exited():
	default:
		t.Errorf("the original deaf app (pid %d) is still running", deaf.PID())
	}
	hist := h.history()
	if len(hist) != 2 || len(hist[0].Jobs) != 4 || hist[0].Ended.IsZero() {
		t.Fatalf("history: %d recoveries, want 2 with 4 jobs each: %+v", len(hist), hist)
	}
	if _, err := os.Stat(h.eng.logPath("deaf")); err != nil {
		t.Errorf("no log for a started app: %v", err)
	}
}

// A rule whose program does not exist fails once, with a reason a person
// understands, and is not retried.
func TestMissingExecutable(t *testing.T) {
	h := newHarness(t, `
[[app]]
id = "ghost"
names = ["org.example.Ghost"]
exec = ["/nonexistent/ghost-app"]
grace = "100ms"
`)
	h.bus.StartApp("-name", "org.example.Ghost", "-mode", "exit")
	h.waitOwner("org.example.Ghost", 0)
	rec := h.crash()
	j := jobOf(t, rec, "ghost")
	if j.Outcome != control.Failed || !strings.Contains(j.Reason, "exec not found: /nonexistent/ghost-app") {
		t.Errorf("job %s %q, want failed with exec not found", j.Outcome, j.Reason)
	}
	if len(rec.Jobs) != 1 {
		t.Errorf("%d jobs, want 1", len(rec.Jobs))
	}
	if st := h.eng.Status(); st.LastRecovery.ID != rec.ID || len(h.eng.runningChildren()) != 0 {
		t.Errorf("something was started or planned again: %+v", st)
	}
	hist := h.history()
	if len(hist) != 1 {
		t.Errorf("history has %d recoveries, want 1 (no retry loop)", len(hist))
	}
}

// Ten restarts in a row, some while jobs are waiting or starting, end with
// every app running exactly once.
func TestRestartStorm(t *testing.T) {
	rules := strings.ReplaceAll(fixtureRules, `grace = "200ms"`, "grace = \"100ms\"\nmax_restarts = 100")
	h := newHarness(t, rules)
	h.bus.StartApp("-name", "org.example.Exiter", "-mode", "exit")
	h.bus.StartApp("-name", "org.example.Deaf", "-mode", "deaf")
	h.bus.StartApp("-name", "org.example.Reconnector", "-mode", "reconnect")
	h.bus.StartApp("-name", "org.example.Needy", "-mode", "exit", "-after", "org.example.Exiter")
	for _, n := range fixtureNames {
		h.waitOwner(n, 0)
	}
	var id string
	for i := range 10 {
		if i%2 == 0 {
			h.bus.Kill()
		} else {
			h.bus.Stop()
		}
		h.bus.Start()
		id = h.waitUp()
		switch i % 3 {
		case 0: // restart at once: jobs are in their grace time
		case 1: // once a relaunched app is back: others are starting
			h.waitOwner("org.example.Exiter", 0)
		case 2: // once the engine has started something
			h.until("a job to act", func() bool { return len(h.eng.runningChildren()) > 0 || h.owners["org.example.Deaf"] != "" })
		}
	}
	rec := h.waitRecovery(id)
	for _, j := range rec.Jobs {
		if j.Outcome == control.Failed || j.Outcome == control.Skipped || j.Outcome == control.Cancelled {
			t.Errorf("final recovery: %s %s (%s)", j.App, j.Outcome, j.Reason)
		}
	}
	for _, n := range fixtureNames {
		pid := h.waitOwner(n, 0)
		if procs := countProcs(t, ownsArg(n)); len(procs) != 1 || procs[0] != pid {
			t.Errorf("%s: processes %v, want exactly the owner %d", n, procs, pid)
		}
	}
}

// dbus-monitor (which exits when its bus goes away, and leaves the name
// table as a monitor) and gdbus monitor are recovered by exe rules.
func TestRealPrograms(t *testing.T) {
	for _, p := range []string{"/usr/bin/dbus-monitor", "/usr/bin/gdbus"} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s not installed", p)
		}
	}
	h := newHarness(t, `
[[app]]
id = "dbus-monitor"
exe = "/usr/bin/dbus-monitor"
grace = "100ms"
ready_timeout = "5s"

[[app]]
id = "gdbus-monitor"
exe = "/usr/bin/gdbus"
grace = "100ms"
ready_timeout = "5s"
`)
	mon := startProgram(t, h.bus, "/usr/bin/dbus-monitor", "--session")
	gd := startProgram(t, h.bus, "/usr/bin/gdbus", "monitor", "--session", "--dest", "org.freedesktop.DBus")
	isMon := func(argv []string) bool { return argv[0] == "/usr/bin/dbus-monitor" }
	isGd := func(argv []string) bool { return len(argv) > 1 && argv[0] == "/usr/bin/gdbus" && argv[1] == "monitor" }
	// Both are known to the engine once gdbus is a peer and dbus-monitor
	// has left the name table (found in /proc as a detached client).
	h.until("both programs known", func() bool {
		h.eng.mu.Lock()
		defer h.eng.mu.Unlock()
		b := h.eng.buses["session"]
		if b == nil {
			return false // no event from the bus yet
		}
		_, detached := b.detached[mon.Pid]
		onBus := false
		for _, p := range b.peers {
			onBus = onBus || p.PID == gd.Pid
		}
		return detached && onBus
	})
	rec := h.crash()
	for _, app := range []string{"dbus-monitor", "gdbus-monitor"} {
		if j := jobOf(t, rec, app); j.Outcome != control.Relaunched {
			t.Errorf("%s: %s (%s), want relaunched", app, j.Outcome, j.Reason)
		}
	}
	for name, match := range map[string]func([]string) bool{"dbus-monitor": isMon, "gdbus": isGd} {
		procs := countProcs(t, match)
		if len(procs) != 1 {
			t.Errorf("%s: %d processes %v, want 1", name, len(procs), procs)
		}
	}
	if alive(mon.Pid, 0) || alive(gd.Pid, 0) {
		t.Errorf("an original monitor is still running")
	}
}

func startProgram(t *testing.T, bus *bustest.Bus, argv ...string) *os.Process {
	t.Helper()
	p, err := os.StartProcess(argv[0], argv, &os.ProcAttr{Env: bus.Env(),
		Sys: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { p.Wait(); close(done) }()
	t.Cleanup(func() { p.Kill(); <-done })
	return p
}

// The notify action asks through the notification server; choosing
// "Relaunch" relaunches the app.
func TestNotifyAction(t *testing.T) {
	h := newHarness(t, `
[[app]]
id = "asker"
names = ["org.example.Asker"]
exec = ["TESTAPP", "-name", "org.example.Asker", "-mode", "exit"]
action = "notify"
grace = "100ms"
`, func(c *Config, bus *bustest.Bus) {
		c.Notifier = &DesktopNotifier{Address: bus.Address, Wait: 20 * time.Second}
	})
	h.bus.StartApp("-name", "org.example.Asker", "-mode", "exit")
	h.waitOwner("org.example.Asker", 0)
	h.bus.Kill()
	h.bus.Start()
	id := h.waitUp()
	f := startFakeServer(t, h.bus, "relaunch")
	rec := h.waitRecovery(id)
	if j := jobOf(t, rec, "asker"); j.Outcome != control.Relaunched || j.Reason != "chosen in the notification" {
		t.Errorf("asker: %s %q", j.Outcome, j.Reason)
	}
	if s := <-f.got; s != "asker lost its bus connection" {
		t.Errorf("notification %q", s)
	}
	h.waitOwner("org.example.Asker", 0)
}

// Paused: jobs are skipped with the reason "paused"; RelaunchNow still acts.
func TestPauseAndRelaunchNow(t *testing.T) {
	h := newHarness(t, `
[[app]]
id = "exiter"
names = ["org.example.Exiter"]
exec = ["TESTAPP", "-name", "org.example.Exiter", "-mode", "exit"]
grace = "100ms"
`)
	h.bus.StartApp("-name", "org.example.Exiter", "-mode", "exit")
	h.waitOwner("org.example.Exiter", 0)
	h.eng.Pause()
	rec := h.crash()
	if j := jobOf(t, rec, "exiter"); j.Outcome != control.Skipped || j.Reason != "paused" {
		t.Errorf("paused: %s %q", j.Outcome, j.Reason)
	}
	if !h.eng.Status().Paused {
		t.Error("Status().Paused is false")
	}
	j, err := h.eng.RelaunchNow(context.Background(), "exiter")
	if err != nil || j.Outcome != control.Relaunched {
		t.Fatalf("RelaunchNow = %+v, %v", j, err)
	}
	pid := h.waitOwner("org.example.Exiter", 0)
	if pid != j.PID {
		t.Errorf("owner %d, job pid %d", pid, j.PID)
	}
	h.until("the engine to see the new process", func() bool {
		st := h.eng.Status()
		return len(st.Apps) == 1 && slices.Equal(st.Apps[0].PIDs, []int{pid})
	})
	// Again: the running app is stopped first, never two.
	j2, err := h.eng.RelaunchNow(context.Background(), "exiter")
	if err != nil || j2.Outcome != control.Relaunched || j2.PID == j.PID {
		t.Fatalf("second RelaunchNow = %+v, %v", j2, err)
	}
	h.waitOwner("org.example.Exiter", pid)
	if procs := countProcs(t, ownsArg("org.example.Exiter")); len(procs) != 1 {
		t.Errorf("processes %v, want 1", procs)
	}
	if _, err := h.eng.RelaunchNow(context.Background(), "nope"); !errors.Is(err, control.ErrUnknownApp) {
		t.Errorf("unknown app: %v", err)
	}
	// The app relaunched by hand while paused is not recovered again.
	h.eng.Resume()
	if hist, _ := h.eng.History(1); len(hist) != 1 || hist[0].Decision != "relaunch requested" {
		t.Errorf("history: %+v", hist)
	}
}

// A peer that matches no rule and does not come back is listed as a
// casualty, and can be relaunched once by its id.
func TestCasualty(t *testing.T) {
	h := newHarness(t, `
[[app]]
id = "other"
names = ["org.example.Other"]
`)
	h.bus.StartApp("-name", "org.example.Stray", "-mode", "exit")
	h.waitOwner("org.example.Stray", 0)
	h.bus.Kill()
	h.bus.Start()
	h.waitUp()
	var cas control.Casualty
	h.until("a casualty", func() bool {
		st := h.eng.Status()
		if len(st.Casualties) == 1 {
			cas = st.Casualties[0]
			return true
		}
		return false
	})
	if !strings.HasPrefix(cas.ID, "casualty:testapp:") || cas.Peer.Cwd == "" {
		t.Errorf("casualty %+v", cas)
	}
	j, err := h.eng.RelaunchNow(context.Background(), cas.ID)
	if err != nil || j.Outcome != control.Relaunched {
		t.Fatalf("RelaunchNow(%s) = %+v, %v", cas.ID, j, err)
	}
	h.waitOwner("org.example.Stray", 0)
	if st := h.eng.Status(); len(st.Casualties) != 0 {
		t.Errorf("casualties after relaunch: %+v", st.Casualties)
	}
}

// TestSameCommand: a program started again is the same when its command
// line is, but for a file of its own in the runtime directory (a worker's
// socket).
func TestSameCommand(t *testing.T) {
	const rt = "/run/user/1000"
	worker := func(socket string) []string {
		return []string{"/usr/lib/x86_64-linux-gnu/libexec/kf5/kioslave5", "/usr/lib/x86_64-linux-gnu/qt5/plugins/kf5/kio/desktop.so",
			"desktop", "", "local:" + socket}
	}
	for _, tc := range []struct {
		name string
		a, b []string
		rt   string
		want bool
	}{
		{"equal", []string{"dunst", "-config", "x"}, []string{"dunst", "-config", "x"}, rt, true},
		{"another argument", []string{"dunst", "-config", "x"}, []string{"dunst", "-config", "y"}, rt, false},
		{"another length", []string{"dunst"}, []string{"dunst", "-v"}, rt, false},
		{"no command line", nil, nil, rt, false},
		{"a new socket in the runtime directory", worker(rt + "/plasmashellAbc.1.kioworker.socket"),
			worker(rt + "/plasmashellXyz.1.kioworker.socket"), rt, true},
		{"runtime directory given with a slash", worker(rt + "/a.socket"), worker(rt + "/b.socket"), rt + "/", true},
		{"elsewhere than the runtime directory", worker("/tmp/a.socket"), worker("/tmp/b.socket"), rt, false},
		{"one of the two elsewhere", worker(rt + "/a.socket"), worker("/tmp/b.socket"), rt, false},
		{"another prefix", []string{"w", "--socket=" + rt + "/a"}, []string{"w", "--listen=" + rt + "/b"}, rt, false},
		{"a directory that only starts the same", []string{"w", rt + "0/a"}, []string{"w", rt + "0/b"}, rt, false},
		{"no runtime directory", worker("/a.socket"), worker("/b.socket"), "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sameCommand(tc.a, tc.b, tc.rt); got != tc.want {
				t.Errorf("sameCommand(%q, %q, %q) = %v, want %v", tc.a, tc.b, tc.rt, got, tc.want)
			}
		})
	}
}

// While the session is ending, nothing is started and the recovery says why.
func TestSessionEnding(t *testing.T) {
	var ending atomic.Bool
	h := newHarness(t, `
[[app]]
id = "exiter"
names = ["org.example.Exiter"]
exec = ["TESTAPP", "-name", "org.example.Exiter", "-mode", "exit"]
grace = "100ms"
`, func(c *Config, _ *bustest.Bus) {
		c.Intent = func(string) (bool, string) { return ending.Load(), "the login session is closing" }
	})
	h.bus.StartApp("-name", "org.example.Exiter", "-mode", "exit")
	h.waitOwner("org.example.Exiter", 0)
	ending.Store(true)
	rec := h.crash()
	if rec.Decision != "session ending: the login session is closing: no recovery" {
		t.Errorf("decision %q", rec.Decision)
	}
	if j := jobOf(t, rec, "exiter"); j.Outcome != control.Skipped || j.Reason != "session ending: the login session is closing" {
		t.Errorf("job %s %q", j.Outcome, j.Reason)
	}
	if n := len(h.eng.runningChildren()); n != 0 {
		t.Errorf("%d processes started", n)
	}
}

// Status changes reach Changed at once (the tray shows them within 100ms).
func TestChangedIsPrompt(t *testing.T) {
	e := New(Config{Logger: slog.New(slog.DiscardHandler)})
	select {
	case <-e.Changed():
	default:
	}
	e.Pause()
	select {
	case <-e.Changed():
	case <-time.After(100 * time.Millisecond):
		t.Fatal("no change signalled within 100ms of Pause")
	}
	if !e.Status().Paused {
		t.Error("not paused")
	}
}

// The hook action runs the rule's command and waits for the app's names.
func TestHookAction(t *testing.T) {
	h := newHarness(t, `
[[app]]
id = "hooked"
names = ["org.example.Hooked"]
action = "hook"
hook = ["/bin/sh", "-c", "TESTAPP -name org.example.Hooked -mode exit & exit 0"]
grace = "100ms"

[[app]]
id = "badhook"
names = ["org.example.BadHook"]
action = "hook"
hook = ["/bin/sh", "-c", "exit 5"]
grace = "100ms"
`)
	h.bus.StartApp("-name", "org.example.Hooked", "-mode", "exit")
	h.bus.StartApp("-name", "org.example.BadHook", "-mode", "exit")
	old := h.waitOwner("org.example.Hooked", 0)
	h.waitOwner("org.example.BadHook", 0)
	rec := h.crash()
	if j := jobOf(t, rec, "hooked"); j.Outcome != control.Hooked {
		t.Errorf("hooked: %s %q", j.Outcome, j.Reason)
	}
	if j := jobOf(t, rec, "badhook"); j.Outcome != control.Failed || !strings.HasPrefix(j.Reason, "hook exited with 5") {
		t.Errorf("badhook: %s %q", j.Outcome, j.Reason)
	}
	pid := h.waitOwner("org.example.Hooked", old)
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
}

// Bus restarts are not the app's crashes: an app that falls with its bus
// is relaunched at every restart, however low its max_restarts. A crash of
// the app busmedic started, with the bus up, counts; at the limit the next
// recovery skips it and says why.
func TestRestartLimit(t *testing.T) {
	h := newHarness(t, `
[[app]]
id = "exiter"
names = ["org.example.Exiter"]
exec = ["TESTAPP", "-name", "org.example.Exiter", "-mode", "exit"]
grace = "50ms"
max_restarts = 1
restart_window = "60s"
`)
	h.bus.StartApp("-name", "org.example.Exiter", "-mode", "exit")
	pid := h.waitOwner("org.example.Exiter", 0)
	for i := range 3 {
		rec := h.crash()
		if j := jobOf(t, rec, "exiter"); j.Outcome != control.Relaunched {
			t.Fatalf("bus restart %d: %s %q, want relaunched", i+1, j.Outcome, j.Reason)
		}
		pid = h.waitOwner("org.example.Exiter", pid)
	}
	// The app busmedic started crashes while its bus stays up.
	syscall.Kill(pid, syscall.SIGKILL)
	const want = "restart limit reached: crashed once in 60s"
	h.until("the crash counted", func() bool {
		plan := h.eng.Plan("session", []watcher.Peer{{UniqueName: ":1.9", Names: []string{"org.example.Exiter"}, UID: -1}})
		return len(plan) == 1 && plan[0].Skip == want
	})
	h.bus.StartApp("-name", "org.example.Exiter", "-mode", "exit")
	h.waitOwner("org.example.Exiter", pid)
	rec := h.crash()
	if j := jobOf(t, rec, "exiter"); j.Outcome != control.Skipped || j.Reason != want {
		t.Errorf("after a crash: %s %q, want skipped: %s", j.Outcome, j.Reason, want)
	}
}

// The status lists the session bus first, whichever watcher spoke first.
func TestStatusBusOrder(t *testing.T) {
	e := New(Config{Logger: slog.New(slog.DiscardHandler)})
	e.mu.Lock()
	e.bus("system")
	e.bus("session")
	e.mu.Unlock()
	var names []string
	for _, b := range e.Status().Buses {
		names = append(names, b.Name)
	}
	if !slices.Equal(names, []string{"session", "system"}) {
		t.Errorf("buses in the status: %q, want session, system", names)
	}
}
