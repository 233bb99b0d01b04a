package systemd

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"busmedic/relaunch/control"
	"busmedic/test/systemdtest"
	"busmedic/usermanager"
)

// scopedApps are apps in no unit of their own that busmedic starts
// itself: one it relaunches, one it keeps ("busmedic keep -- COMMAND",
// which execs COMMAND in place).
var scopedApps = []struct{ id, name, action string }{
	{"scoped-echo", "org.busmedic.test.Scoped", "relaunch"},
	{"kept-echo", "org.busmedic.test.Kept", "keep"},
}

// busmedicUnit is busmedic.service with KillMode=control-group, the
// default, rather than the KillMode=process of the unit busmedic ships:
// the apps busmedic started must owe their lives to their own scopes,
// not to busmedic's KillMode.
const busmedicUnit = `[Service]
Type=exec
ExecStart=` + systemdtest.BusmedicPath + ` run --no-tray
KillMode=control-group
`

// TestStartedAppsInOwnScopes: the apps busmedic starts itself run each in
// a scope of their own, app-busmedic-<id>-<pid>.scope in app.slice, as a
// desktop's launcher puts the apps it starts: not in busmedic.service.
// They live through a restart of busmedic.service, whose KillMode would
// take everything in its cgroup, with the same pid, and the new busmedic
// recovers them after the next bus restart (the relaunched app in a new
// scope of its own; the kept one, the same process, in its scope still).
func TestStartedAppsInOwnScopes(t *testing.T) {
	m := systemdtest.Boot(t, systemdtest.Options{})
	s := &session{t: t, m: m}
	var rules strings.Builder
	for _, a := range scopedApps {
		fmt.Fprintf(&rules, "[[app]]\nid = %q\nnames = [%q]\naction = %q\nexec = [\"/usr/bin/dbus-test-tool\", \"echo\", \"--name=%s\"]\n\n",
			a.id, a.name, a.action, a.name)
	}
	m.User.WriteFile(".config/busmedic/apps.toml", []byte(rules.String()), 0o644)
	m.User.WriteUnit("busmedic.service", busmedicUnit)
	m.User.Run("systemctl", "--user", "start", "busmedic.service")
	s.waitStatus(30*time.Second, "busmedic up", func(st control.Status) bool { return bus(st, "session").Up })

	pids := map[string]int{}
	for _, a := range scopedApps {
		m.User.Run(systemdtest.BusmedicPath, "relaunch", a.id)
		pids[a.id] = s.appPID(a.id)
		s.wantScope(a.id, pids[a.id])
	}
	answers(t, m, "org.busmedic.test.Scoped", "once busmedic started it")
	answers(t, m, "org.busmedic.test.Kept", "once busmedic started it")
	// The keeper that the first "busmedic keep" started is in a scope of
	// its own, not in the kept app's nor in busmedic.service, whose
	// KillMode here would take it, and every kept app's connection.
	s.wantKeeperScope()

	before := m.User.Unit("busmedic.service")
	m.User.Run("systemctl", "--user", "restart", "busmedic.service")
	if now := m.User.Unit("busmedic.service"); !now.Running() || now.MainPID == before.MainPID {
		t.Fatalf("busmedic.service was %s, is %s: not restarted", before, now)
	}
	for _, a := range scopedApps {
		// Same pid, same scope: busmedic's stop did not reach it.
		s.wantScope(a.id, pids[a.id])
	}
	answers(t, m, "org.busmedic.test.Scoped", "after busmedic restarted")
	answers(t, m, "org.busmedic.test.Kept", "after busmedic restarted")
	st := s.waitStatus(30*time.Second, "the new busmedic sees the apps", func(st control.Status) bool {
		for _, a := range scopedApps {
			if i := indexApp(st, a.id); i < 0 || !st.Apps[i].Running {
				return false
			}
		}
		return true
	})
	oldID := bus(st, "session").ID

	m.User.Run("systemctl", "--user", "restart", "dbus.service")
	st = s.waitStatus(30*time.Second, "the apps back after the bus restart", func(st control.Status) bool {
		b := bus(st, "session")
		if !b.Up || b.ID == oldID || st.LastRecovery == nil || st.LastRecovery.ID != b.ID || st.LastRecovery.Ended.IsZero() {
			return false
		}
		for _, a := range scopedApps {
			if i := indexApp(st, a.id); i < 0 || !st.Apps[i].Running {
				return false
			}
		}
		return true
	})
	outcomes := map[string]control.Outcome{}
	for _, j := range st.LastRecovery.Jobs {
		outcomes[j.App] = j.Outcome
		t.Logf("%s: %s %s", j.App, j.Outcome, j.Reason)
	}
	if o := outcomes["scoped-echo"]; o != control.Relaunched {
		t.Errorf("scoped-echo: %q after the bus restart, want relaunched", o)
	}
	if o := outcomes["kept-echo"]; !o.Recovered() {
		t.Errorf("kept-echo: %q after the bus restart, want it recovered", o)
	}
	answers(t, m, "org.busmedic.test.Scoped", "after the bus restart")
	answers(t, m, "org.busmedic.test.Kept", "after the bus restart")

	// The relaunched app is a new process, in a new scope; the old scope,
	// empty, is gone (CollectMode=inactive-or-failed).
	pid := s.appPID("scoped-echo")
	if pid == pids["scoped-echo"] {
		t.Errorf("scoped-echo: pid %d is the one from before the bus restart", pid)
	}
	s.wantScope("scoped-echo", pid)
	old := usermanager.ScopeName(usermanager.Launcher, "scoped-echo", pids["scoped-echo"])
	m.User.WaitUnit(old, 10*time.Second, func(u systemdtest.UnitState) bool { return u.LoadState == "not-found" })
	// The kept app lived through it, in its scope.
	if pid := s.appPID("kept-echo"); pid != pids["kept-echo"] {
		t.Errorf("kept-echo: pid %d, was %d: the kept app did not live through the bus restart", pid, pids["kept-echo"])
	}
	s.wantScope("kept-echo", pids["kept-echo"])
}

// appPID is the one pid busmedic's status lists for the app (for a kept
// app the process kept, not the keeper).
func (s *session) appPID(id string) int {
	s.t.Helper()
	st := s.waitStatus(30*time.Second, id+" running", func(st control.Status) bool {
		i := indexApp(st, id)
		return i >= 0 && st.Apps[i].Running && len(st.Apps[i].PIDs) == 1
	})
	return st.Apps[indexApp(st, id)].PIDs[0]
}

// wantScope checks that pid runs, in the scope busmedic makes for app id,
// in app.slice.
func (s *session) wantScope(id string, pid int) {
	s.t.Helper()
	scope := usermanager.ScopeName(usermanager.Launcher, id, pid)
	// busmedic waits for the scope's job before it goes on, but not for
	// long: the manager may finish it a moment later.
	u := s.m.User.WaitUnit(scope, 10*time.Second, systemdtest.UnitState.Running)
	if slice := strings.TrimSpace(s.m.User.Run("systemctl", "--user", "show", "--value", "--property=Slice", "--", scope)); slice != "app.slice" {
		s.t.Errorf("%s is in %q, want app.slice", scope, slice)
	}
	cg := s.m.User.Run("cat", "/proc/"+strconv.Itoa(pid)+"/cgroup")
	if want := "/app.slice/" + scope; !strings.Contains(cg, want+"\n") && !strings.HasSuffix(cg, want) {
		s.t.Errorf("pid %d of %s is in cgroup %q, want …%s (scope %s)\n%s", pid, id, strings.TrimSpace(cg), want, u,
			s.m.User.Run("journalctl", "--user", "-u", "busmedic.service", "--no-pager", "-n", "40"))
	}
}

// wantKeeperScope checks that one keeper runs, in a scope
// app-busmedic-keeper-<pid>.scope in app.slice.
func (s *session) wantKeeperScope() {
	s.t.Helper()
	var units []string
	for _, f := range strings.Fields(s.m.User.Run("systemctl", "--user", "list-units", "--type=scope", "--state=running",
		"--plain", "--no-legend", "--", "app-busmedic-keeper-*.scope")) {
		if strings.HasSuffix(f, ".scope") {
			units = append(units, f)
		}
	}
	if len(units) != 1 {
		s.t.Fatalf("keeper scopes %q, want one", units)
	}
	pid := strings.TrimSuffix(strings.TrimPrefix(units[0], "app-busmedic-keeper-"), ".scope")
	if cmd := s.m.User.Run("cat", "/proc/"+pid+"/cmdline"); !strings.Contains(cmd, "\x00keeper\x00") {
		s.t.Fatalf("%s is named for pid %s, %q: not the keeper", units[0], pid, cmd)
	}
	if cg := s.m.User.Run("cat", "/proc/"+pid+"/cgroup"); !strings.Contains(cg, "/app.slice/"+units[0]) {
		s.t.Errorf("the keeper, pid %s, is in cgroup %q, want %s", pid, strings.TrimSpace(cg), units[0])
	}
}
