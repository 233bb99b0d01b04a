package relaunch

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"busmedic/appdb"
	"busmedic/relaunch/control"
	"busmedic/watcher/bustest"
)

// A libdbus service (dbus-test-tool echo exits as soon as its bus goes) with
// a rule and the default grace: after an orderly stop of the bus (SIGTERM,
// as systemd and package scripts do, with the daemon's goodbyes for every
// peer) as after a SIGKILL, it is relaunched at once, answers on the new
// bus, and nobody is listed as fallen off.
func TestOrderlyStopRecovers(t *testing.T) {
	const tool = "/usr/bin/dbus-test-tool"
	if _, err := os.Stat(tool); err != nil {
		t.Fatalf("%s not installed (apt-get install dbus-tests): %v", tool, err)
	}
	h := newHarness(t, `
[[app]]
id = "echo"
names = ["org.example.Echo"]
exec = ["/usr/bin/dbus-test-tool", "echo", "--name=org.example.Echo"]
`)
	startProgram(t, h.bus, tool, "echo", "--name=org.example.Echo")
	pid := h.waitOwner("org.example.Echo", 0)
	for _, tc := range []struct {
		name string
		stop func()
	}{
		{"SIGTERM", h.bus.Stop},
		{"SIGKILL", h.bus.Kill},
		{"SIGTERM again", h.bus.Stop},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.t = t
			defer func() { h.t = t }()
			tc.stop()
			h.bus.Start()
			rec := h.waitRecovery(h.waitUp())
			j := jobOf(t, rec, "echo")
			if j.Outcome != control.Relaunched || !strings.Contains(j.Reason, "no grace") {
				t.Errorf("echo: %s %q, want relaunched at once (it had exited)", j.Outcome, j.Reason)
			}
			pid = h.waitOwner("org.example.Echo", pid)
			if procs := countProcs(t, func(argv []string) bool { return len(argv) > 1 && argv[0] == tool && argv[1] == "echo" }); len(procs) != 1 {
				t.Errorf("dbus-test-tool echo: processes %v, want one", procs)
			}
			if st := h.eng.Status(); len(st.Casualties) != 0 {
				t.Errorf("casualties %+v, want none", st.Casualties)
			}
		})
	}
}

// A helper process the app started (a panel's plugin) falls with it and
// is no casualty; nor is a peer whose name the bus can start on demand.
func TestNoFalseCasualties(t *testing.T) {
	h := newHarness(t, `
[[app]]
id = "parent"
names = ["org.example.Parent"]
exec = ["TESTAPP", "-name", "org.example.Parent", "-mode", "exit", "-spawn", "org.example.Child"]
grace = "100ms"
`)
	parent := h.bus.StartApp("-name", "org.example.Parent", "-mode", "exit", "-spawn", "org.example.Child")
	h.waitOwner("org.example.Parent", 0)
	child := h.waitOwner("org.example.Child", 0)
	h.until("the child seen with its parent", func() bool {
		for _, p := range h.peers {
			if p.PID == child {
				return p.PPID == parent.PID()
			}
		}
		return false
	})
	checks := h.eng.casualtyChecks.Load()
	for _, stop := range []func(){h.bus.Stop, h.bus.Kill} {
		stop()
		h.bus.Start()
		rec := h.waitRecovery(h.waitUp())
		if j := jobOf(t, rec, "parent"); j.Outcome != control.Relaunched {
			t.Errorf("parent: %s %q", j.Outcome, j.Reason)
		}
		child = h.waitOwner("org.example.Child", child)
		// The casualty grace passes with nothing listed.
		h.until("the casualty check", func() bool { return h.eng.casualtyChecks.Load() >= checks+1 })
		checks = h.eng.casualtyChecks.Load()
		if st := h.eng.Status(); len(st.Casualties) != 0 {
			t.Errorf("casualties %+v, want none (the child is the parent's)", st.Casualties)
		}
	}
}

// A bus that keeps restarting (a crash loop) gets its apps back once it
// has stayed up a while, not at every restart; the recovery says why, and
// the apps do come back.
func TestStormGuard(t *testing.T) {
	h := newHarness(t, `
[[app]]
id = "exiter"
names = ["org.example.Exiter"]
exec = ["TESTAPP", "-name", "org.example.Exiter", "-mode", "exit"]
`, func(c *Config, _ *bustest.Bus) { c.stormRestarts, c.stormSettle = 3, 300*time.Millisecond })
	h.bus.StartApp("-name", "org.example.Exiter", "-mode", "exit")
	pid := h.waitOwner("org.example.Exiter", 0)
	for i := range 3 {
		rec := h.crash()
		storm := strings.HasPrefix(rec.Decision, "the bus restarted 3 times within 60s")
		if storm != (i == 2) {
			t.Errorf("restart %d: decision %q", i+1, rec.Decision)
		}
		if j := jobOf(t, rec, "exiter"); j.Outcome != control.Relaunched {
			t.Errorf("restart %d: %s %q", i+1, j.Outcome, j.Reason)
		}
		pid = h.waitOwner("org.example.Exiter", pid)
	}
}

// A peer that matches no rule but whose name the bus starts on demand is
// not fallen off: the bus brings it back at the next call. One whose name
// it cannot start is.
func TestActivatableIsNoCasualty(t *testing.T) {
	services := t.TempDir()
	service := "[D-BUS Service]\nName=org.example.OnDemand\nExec=" + bustest.TestApp(t) + " -name org.example.OnDemand\n"
	if err := os.WriteFile(services+"/org.example.OnDemand.service", []byte(service), 0o644); err != nil {
		t.Fatal(err)
	}
	h := newHarnessOn(t, []bustest.Option{bustest.ServiceDir(services)}, `
[[app]]
id = "other"
names = ["org.example.Other"]
`)
	h.bus.StartApp("-name", "org.example.OnDemand", "-mode", "exit")
	h.bus.StartApp("-name", "org.example.Stray", "-mode", "exit")
	h.waitOwner("org.example.OnDemand", 0)
	h.waitOwner("org.example.Stray", 0)
	checks := h.eng.casualtyChecks.Load()
	h.crash()
	h.until("the casualty check", func() bool { return h.eng.casualtyChecks.Load() > checks })
	st := h.eng.Status()
	if len(st.Casualties) != 1 || !st.Casualties[0].Peer.Owns("org.example.Stray") {
		t.Errorf("casualties %+v, want only the stray app (the other is activatable)", st.Casualties)
	}
}

// With no rules in force (the rules file is broken at start), a relaunch
// request is refused as an unknown app, not a crash of the daemon.
func TestRelaunchNowWithoutRules(t *testing.T) {
	e := New(Config{Rules: func() *appdb.Set { return nil }})
	if _, err := e.RelaunchNow(t.Context(), "dunst"); !errors.Is(err, control.ErrUnknownApp) {
		t.Errorf("RelaunchNow = %v, want ErrUnknownApp", err)
	}
}

// A child busmedic stops itself (a relaunch on request) did not crash:
// asking twice leaves the restart limit untouched.
func TestOwnStopsAreNoCrashes(t *testing.T) {
	h := newHarness(t, `
[[app]]
id = "exiter"
names = ["org.example.Exiter"]
exec = ["TESTAPP", "-name", "org.example.Exiter", "-mode", "exit"]
max_restarts = 1
`)
	h.bus.StartApp("-name", "org.example.Exiter", "-mode", "exit")
	pid := h.waitOwner("org.example.Exiter", 0)
	for i := range 3 {
		// The engine must know the running copy to stop it.
		h.until("the engine sees the app", func() bool {
			for _, a := range h.eng.Status().Apps {
				if a.ID == "exiter" {
					return slices.Contains(a.PIDs, pid)
				}
			}
			return false
		})
		j, err := h.eng.RelaunchNow(t.Context(), "exiter")
		if err != nil || j.Outcome != control.Relaunched {
			t.Fatalf("relaunch %d: %+v, %v", i+1, j, err)
		}
		pid = h.waitOwner("org.example.Exiter", pid)
	}
	if j := jobOf(t, h.crash(), "exiter"); j.Outcome != control.Relaunched {
		t.Errorf("after relaunches on request: %s %q, want relaunched", j.Outcome, j.Reason)
	}
}
