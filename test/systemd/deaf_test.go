package systemd

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"busmedic/relaunch/control"
	"busmedic/test/systemdtest"
)

// onDemand is a service the bus starts on demand from a D-Bus service file
// with Exec= only (no SystemdService=): testapp, which stays alive but deaf
// when its bus goes, as a Qt service does.
type onDemand struct {
	name string
	// ignoreTerm: it ignores SIGTERM, so that only busmedic's SIGKILL
	// after the stop timeout ends it, and its unit ends "failed".
	ignoreTerm bool
}

// onDemands are the services of TestDeafOnDemandService: one that SIGTERM
// ends, and one with a "-" in its name (dbus-broker escapes it in its
// unit's name) that only SIGKILL ends.
var onDemands = []onDemand{
	{name: "org.busmedic.test.OnDemand"},
	{name: "org.busmedic.test.Stubborn-Deaf", ignoreTerm: true},
}

func (d onDemand) serviceFile() string {
	exec := "/usr/local/bin/testapp -mode deaf -name " + d.name
	if d.ignoreTerm {
		exec = "/usr/local/bin/testapp -mode deaf -ignore-term -name " + d.name
	}
	return "[D-BUS Service]\nName=" + d.name + "\nExec=" + exec + "\n"
}

// TestDeafOnDemandService restarts the session bus of a systemd session
// while two services the bus started on demand stay alive but deaf; the
// first call to each name then makes the new bus start a new copy, and no
// old copy may be left: exactly one process of each service runs, the new
// one.
//
// dbus-broker starts each in a transient user unit of its own
// ("dbus-:1.2-org.busmedic.test.OnDemand@0.service"), which outlives the
// bus, and whose name the new bus tends to give the new copy's unit: while
// the old unit runs, the call that would start the new copy fails ("unit
// is invalid"). So busmedic must stop the old copy without waiting for a
// call, once it stayed off the new bus for its grace, and say so in its
// history; the unit must then be gone, not left failed, even for the copy
// that took a SIGKILL, and the first call after that must work.
// dbus-daemon starts them in its own unit, dbus.service, whose restart
// ends them: busmedic has nothing to stop.
func TestDeafOnDemandService(t *testing.T) {
	for _, impl := range []systemdtest.Bus{systemdtest.Daemon, systemdtest.Broker} {
		t.Run(string(impl), func(t *testing.T) { testDeafOnDemand(t, impl) })
	}
}

func testDeafOnDemand(t *testing.T, impl systemdtest.Bus) {
	m := systemdtest.Boot(t, systemdtest.Options{UserBus: impl,
		Binds: map[string]string{"/usr/local/bin/testapp": systemdtest.Build(t, "busmedic/watcher/bustest/testapp")}})
	services := onDemands
	if impl == systemdtest.Daemon {
		// systemd ends dbus.service's copies with it, and one that
		// ignores SIGTERM holds the restart up for the unit's stop
		// timeout (90 s): systemd's business, not busmedic's.
		services = onDemands[:1]
	}
	// Registered after Boot, so run before the poweroff: a copy that
	// ignores SIGTERM would hold the poweroff up for its stop timeout.
	t.Cleanup(func() { killCopies(m, services) })
	s := &session{t: t, m: m}
	for _, d := range services {
		m.User.WriteFile(".local/share/dbus-1/services/"+d.name+".service", []byte(d.serviceFile()), 0o644)
	}
	// dbus-broker reads the service files again only when told to.
	m.User.Run("busctl", "--user", "call", "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "ReloadConfig")
	m.User.StartUnit("busmedic.service", nil, systemdtest.BusmedicPath, "run", "--no-tray", "-v")
	st := s.waitStatus(30*time.Second, "busmedic sees the session bus", func(st control.Status) bool { return bus(st, "session").Up })
	oldID := bus(st, "session").ID

	type copyOf struct {
		pid  int
		unit string
	}
	old := map[string]copyOf{}
	for _, d := range services {
		if err := ping(m, d.name); err != nil {
			t.Fatalf("before the restart: %v", err)
		}
		c := copyOf{pid: s.owner(d.name)}
		c.unit = unitOf(t, m, c.pid)
		old[d.name] = c
		t.Logf("%s: pid %d in %s", d.name, c.pid, c.unit)
		// The premise: where each bus starts its services.
		if want := "dbus.service"; impl == systemdtest.Daemon && c.unit != want {
			t.Fatalf("dbus-daemon started %s in %s, not in %s", d.name, c.unit, want)
		}
		if want := "dbus-:1."; impl == systemdtest.Broker && !strings.HasPrefix(c.unit, want) {
			t.Fatalf("dbus-broker started %s in %s, not in a unit %s…", d.name, c.unit, want)
		}
	}

	restart := time.Now()
	m.User.Run("systemctl", "--user", "restart", "dbus.service")
	if impl == systemdtest.Broker {
		// The old copies outlived the bus. dbus-broker's new launcher
		// tends to have the old one's unique name and counts its units
		// from 0 again, so its first unit for a name may be the one
		// the old copy still runs in, which systemd refuses: busmedic
		// stops the old copies once they stayed off the new bus for
		// its grace, before anyone calls them.
		for _, d := range services {
			c := old[d.name]
			m.User.WaitJournal("busmedic.service", fmt.Sprintf(`possible deaf old copy.*testapp\[%d\]`, c.pid), restart, 30*time.Second)
			m.User.WaitJournal("busmedic.service", fmt.Sprintf(`stopped a deaf old copy.*name=%s pid=%d\b`, regexp.QuoteMeta(d.name), c.pid),
				restart, 30*time.Second)
			if d.ignoreTerm {
				// The copy that took a SIGKILL failed its unit
				// (a user manager says nothing of one that
				// ended well).
				m.User.WaitJournal(c.unit, `Failed with result 'signal'`, restart, 30*time.Second)
			}
			// The manager unloaded the old unit, failed or not,
			// and nothing has started a new one in its name yet.
			m.User.WaitUnit(c.unit, 10*time.Second, func(u systemdtest.UnitState) bool { return u.LoadState == "not-found" })
		}
	}
	for _, d := range services {
		if err := ping(m, d.name); err != nil {
			t.Fatalf("after the restart, the first call: %v", err)
		}
	}
	e := m.User.WaitJournal("busmedic.service", `"bus restarted" bus=session .*old_id=`+oldID, restart, 30*time.Second)
	newID := regexp.MustCompile(` id=([0-9a-f]+)`).FindStringSubmatch(e.Message)
	if newID == nil {
		t.Fatalf("busmedic's line on the restart names no new id: %s", e.Message)
	}

	for _, d := range services {
		c := old[d.name]
		pid := s.owner(d.name)
		if pid == 0 || pid == c.pid {
			t.Fatalf("%s is owned by pid %d on the new bus; the old copy was pid %d", d.name, pid, c.pid)
		}
		// The new copy's unit is often the old one's name: what
		// made the first call fail while the old copy ran.
		t.Logf("%s: new copy pid %d in %s", d.name, pid, unitOf(t, m, pid))
		wantOneCopy(t, m, d.name, pid)
	}
	// Whatever busmedic did after the restart is done.
	m.User.WaitJournal("busmedic.service", "recovery ended.*id="+newID[1], restart, 30*time.Second)
	if failed := m.User.Run("systemctl", "--user", "list-units", "--failed", "--no-legend", "--plain"); failed != "" {
		t.Errorf("failed user units:\n%s", failed)
	}

	var history []control.Recovery
	out := m.User.Run(systemdtest.BusmedicPath, "history", "--json", "-n", "0")
	if err := json.Unmarshal([]byte(out), &history); err != nil {
		t.Fatalf("busmedic history --json: %v\n%s", err, out)
	}
	stopped := map[int]control.Job{}
	for _, r := range history {
		for _, j := range r.Jobs {
			if j.Action == "stop" {
				stopped[j.PID] = j
				t.Logf("history: %s %s: %s (%s)", r.Decision, j.App, j.Outcome, j.Reason)
			}
		}
	}
	for _, d := range services {
		c := old[d.name]
		j, ok := stopped[c.pid]
		delete(stopped, c.pid)
		switch {
		case impl == systemdtest.Daemon && ok:
			t.Errorf("busmedic stopped %s's old copy, which died with dbus.service: %+v", d.name, j)
		case impl == systemdtest.Broker && !ok:
			t.Errorf("busmedic's history has no stop of %s's old copy (pid %d):\n%s", d.name, c.pid, m.User.Run(systemdtest.BusmedicPath, "history"))
		case ok && (j.Outcome != control.Stopped || j.App != "deaf:testapp:"+strconv.Itoa(c.pid) ||
			!strings.HasSuffix(j.Reason, "it stayed off the new bus for 2s; dbus-broker would fail to start a new copy while its unit runs")):
			t.Errorf("%s's old copy: %s %s (%s)", d.name, j.App, j.Outcome, j.Reason)
		}
	}
	for pid, j := range stopped {
		t.Errorf("busmedic stopped pid %d, no old copy: %+v", pid, j)
	}
}

// ping calls name's Peer.Ping on the session bus, which starts the service
// if nobody owns the name. busctl makes no other call that might start it
// first (gdbus call introspects).
func ping(m *systemdtest.Machine, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := m.User.Command(ctx, "busctl", "--user", "call", name, "/", "org.freedesktop.DBus.Peer", "Ping").CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s did not answer: %w: %s", name, err, out)
	}
	return nil
}

// unitOf returns the unit process pid runs in: the last component of its
// cgroup (cgroup v2, or systemd's own hierarchy on a hybrid host).
func unitOf(t *testing.T, m *systemdtest.Machine, pid int) string {
	t.Helper()
	cg := m.User.Run("cat", fmt.Sprintf("/proc/%d/cgroup", pid))
	for line := range strings.SplitSeq(cg, "\n") {
		if path, ok := strings.CutPrefix(line, "0::"); ok {
			return path[strings.LastIndexByte(path, '/')+1:]
		}
		if _, path, ok := strings.Cut(line, ":name=systemd:"); ok {
			return path[strings.LastIndexByte(path, '/')+1:]
		}
	}
	t.Fatalf("pid %d: no unit in its cgroup:\n%s", pid, cg)
	return ""
}

// wantOneCopy checks that pid is the only process of the service name.
func wantOneCopy(t *testing.T, m *systemdtest.Machine, name string, pid int) {
	t.Helper()
	pids := copies(m, name)
	if len(pids) != 1 || pids[0] != pid {
		t.Errorf("processes of %s: %v, want only %d (its owner):\n%s", name, pids, pid,
			m.User.Run("ps", "-o", "pid,ppid,unit,args", "-u", systemdtest.User))
	}
}

// copies returns the pids of the user's processes of the service name.
func copies(m *systemdtest.Machine, name string) []int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, _ := m.User.Command(ctx, "pgrep", "-u", strconv.Itoa(systemdtest.UID), "-f", "--", "-name "+regexp.QuoteMeta(name)+"$").Output()
	var pids []int
	for f := range strings.FieldsSeq(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killCopies kills what is left of the services' copies in the container.
func killCopies(m *systemdtest.Machine, services []onDemand) {
	for _, d := range services {
		for _, pid := range copies(m, d.name) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			m.User.Command(ctx, "kill", "-KILL", strconv.Itoa(pid)).Run()
			cancel()
		}
	}
}
