package relaunch

import (
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"busmedic/relaunch/control"
	"busmedic/watcher/bustest"
)

// No systemd runs in unit tests (the real user manager is tested in
// test/systemdtest), so fakeManager stands in for it: one service whose
// main process is a testapp on the test's real bus, started, stopped and
// restarted as systemd would. It follows its main process the way systemd
// does: an exit makes the unit failed, or with Restart=on-failure makes
// it wait for a restart that the test sets off (restartByItself), once it
// has seen the engine look at the waiting unit.
type fakeManager struct {
	unit    string
	app     string   // the testapp program
	args    []string // the unit's ExecStart arguments
	env     []string
	restart string // Restart=

	mu         sync.Mutex
	st         unitState
	main       *fakeProc
	procs      []*fakeProc
	stopping   bool
	jobs       []string
	cancelNext bool          // the next job is replaced by systemd's own stop
	waiting    chan struct{} // closed once the engine saw the unit in auto-restart
	sawWaiting bool
}

type fakeProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func newFakeManager(t *testing.T, unit, restart string, args ...string) *fakeManager {
	f := &fakeManager{unit: unit, app: bustest.TestApp(t), args: args, restart: restart,
		st: unitState{LoadState: "loaded", ActiveState: "inactive", SubState: "dead", Type: "simple", Restart: restart,
			Result: "success", StopTimeout: 300 * time.Millisecond},
		waiting: make(chan struct{})}
	t.Cleanup(func() {
		f.mu.Lock()
		procs := slices.Clone(f.procs)
		f.mu.Unlock()
		for _, p := range procs {
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return f
}

// option connects the fake to the harness's bus and engine.
func (f *fakeManager) option(c *Config, bus *bustest.Bus) {
	f.env = bus.Env()
	c.dialUnits = func(context.Context, string) (unitManager, error) { return f, nil }
}

// spawnLocked starts the unit's main process, as systemd does.
func (f *fakeManager) spawnLocked() error {
	cmd := exec.Command(f.app, f.args...)
	cmd.Env = f.env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	p := &fakeProc{cmd: cmd, done: make(chan struct{})}
	f.main = p
	f.procs = append(f.procs, p)
	f.st.ActiveState, f.st.SubState, f.st.MainPID, f.st.MainStart = "active", "running", cmd.Process.Pid, time.Now()
	go func() {
		cmd.Wait()
		close(p.done)
		f.exited(p)
	}()
	return nil
}

// exited is systemd noting its main process's exit.
func (f *fakeManager) exited(p *fakeProc) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.main != p || f.stopping {
		return
	}
	f.main = nil
	f.st.MainPID, f.st.Result = 0, "exit-code"
	f.st.ActiveState, f.st.SubState = "failed", "failed"
	if f.restart == "on-failure" {
		f.st.ActiveState, f.st.SubState = "activating", "auto-restart"
	}
}

// start starts the unit as the session did at login.
func (f *fakeManager) start(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.spawnLocked(); err != nil {
		t.Fatal(err)
	}
}

// restartByItself is the restart Restart= makes, once the engine has seen
// the unit waiting for it.
func (f *fakeManager) restartByItself(t *testing.T) {
	t.Helper()
	select {
	case <-f.waiting:
	case <-time.After(waitLimit):
		t.Fatalf("the engine never looked at unit %s waiting for its restart", f.unit)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.spawnLocked(); err != nil {
		t.Fatal(err)
	}
	f.st.NRestarts++
}

func (f *fakeManager) jobList() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.jobs)
}

func (f *fakeManager) close() {}

// scope: the processes busmedic starts in these tests stay where they are.
func (f *fakeManager) scope(context.Context, string, int, string) (string, error) {
	return "done", nil
}

func (f *fakeManager) state(_ context.Context, unit string) (unitState, error) {
	if unit != f.unit {
		return unitState{LoadState: "not-found", ActiveState: "inactive", SubState: "dead"}, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st.SubState == "auto-restart" && !f.sawWaiting {
		f.sawWaiting = true
		close(f.waiting)
	}
	return f.st, nil
}

func (f *fakeManager) run(_ context.Context, unit string, restart bool) (string, error) {
	f.mu.Lock()
	job := "start"
	if restart {
		job = "restart"
	}
	f.jobs = append(f.jobs, job)
	cancelled := f.cancelNext
	f.cancelNext = false
	old := f.main
	f.stopping = true
	f.mu.Unlock()
	if old != nil && (restart || cancelled) {
		// systemd ends the old process: SIGTERM, and SIGKILL after
		// TimeoutStopSec (a deaf testapp ignores SIGTERM).
		old.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(f.st.StopTimeout)
		select {
		case <-old.done:
		case <-t.C:
			old.cmd.Process.Kill()
			<-old.done
		}
		t.Stop()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopping = false
	if cancelled {
		f.main = nil
		f.st.ActiveState, f.st.SubState, f.st.MainPID, f.st.Result = "inactive", "dead", 0, "success"
		return "canceled", nil
	}
	if !restart && f.main != nil {
		return "done", nil // started already: nothing to do
	}
	if err := f.spawnLocked(); err != nil {
		f.st.ActiveState, f.st.SubState, f.st.Result = "failed", "failed", "resources"
		return "failed", nil
	}
	return "done", nil
}

// An app in a user service is brought back through the user manager, as
// its state says, and exactly once: busmedic starts no process itself.
func TestRecoveryThroughUnit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mode     string // the testapp's -mode
		restart  string // the unit's Restart=
		cancel   bool   // systemd replaces busmedic's first job with its own stop
		outcome  control.Outcome
		reason   string
		jobs     []string
		byItself bool
	}{
		// A libdbus client in a Type=simple unit exits with its bus:
		// the unit is failed, and started again.
		{name: "failed unit is started", mode: "exit", outcome: control.Relaunched,
			reason: "started unit app-u.service through systemd (it had failed (exit-code))", jobs: []string{"start"}},
		// Restart=on-failure brings it back: busmedic waits, starts
		// nothing, and says so.
		{name: "unit that restarts itself is waited for", mode: "exit", restart: "on-failure", byItself: true,
			outcome: control.Reconnected, reason: "unit app-u.service restarted itself (Restart=on-failure)"},
		// Alive and off the bus: the unit is restarted, and systemd ends
		// the old process.
		{name: "deaf process is restarted through its unit", mode: "deaf", outcome: control.Relaunched,
			reason: "restarted unit app-u.service through systemd (pid PID had run since before the bus went down)",
			jobs:   []string{"restart"}},
		// systemd stops the unit itself meanwhile (a Type=dbus unit whose
		// name vanished), cancelling busmedic's job: busmedic looks
		// again and starts it.
		{name: "job cancelled by systemd", mode: "deaf", cancel: true, outcome: control.Relaunched,
			reason: "started unit app-u.service through systemd (it was inactive)", jobs: []string{"restart", "start"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const name = "org.example.InUnit"
			f := newFakeManager(t, "app-u.service", tc.restart, "-name", name, "-mode", tc.mode)
			f.cancelNext = tc.cancel
			h := newHarness(t, `
[[app]]
id = "inunit"
names = ["`+name+`"]
unit = "app-u.service"
grace = "100ms"
`, f.option)
			f.start(t)
			pid := h.waitOwner(name, 0)

			h.bus.Kill()
			h.bus.Start()
			id := h.waitUp()
			if tc.byItself {
				f.restartByItself(t)
			}
			j := jobOf(t, h.waitRecovery(id), "inunit")
			want := strings.ReplaceAll(tc.reason, "PID", strconv.Itoa(pid))
			if j.Outcome != tc.outcome || j.Reason != want {
				t.Errorf("job: %s %q\nwant %s %q", j.Outcome, j.Reason, tc.outcome, want)
			}
			if got := f.jobList(); !slices.Equal(got, tc.jobs) {
				t.Errorf("jobs for the unit: %q, want %q", got, tc.jobs)
			}
			h.waitOwner(name, pid)
			if procs := countProcs(t, ownsArg(name)); len(procs) != 1 {
				t.Errorf("processes of the app: %v, want one", procs)
			}
			if c := h.eng.runningChildren(); len(c) != 0 {
				t.Errorf("busmedic started %d processes itself, want none", len(c))
			}
		})
	}
}

// Relaunch now, asked for by the user, restarts the unit: its process
// started before the request.
func TestRelaunchNowThroughUnit(t *testing.T) {
	const name = "org.example.Now"
	f := newFakeManager(t, "app-now.service", "", "-name", name, "-mode", "exit")
	h := newHarness(t, `
[[app]]
id = "now"
names = ["`+name+`"]
unit = "app-now.service"
`, f.option)
	f.start(t)
	pid := h.waitOwner(name, 0)
	j, err := h.eng.RelaunchNow(context.Background(), "now")
	if err != nil {
		t.Fatal(err)
	}
	want := "restarted unit app-now.service through systemd (pid " + strconv.Itoa(pid) + " had run since before the relaunch was asked for)"
	if j.Outcome != control.Relaunched || j.Reason != want {
		t.Errorf("relaunch now: %s %q, want relaunched %q", j.Outcome, j.Reason, want)
	}
	if got := f.jobList(); !slices.Equal(got, []string{"restart"}) {
		t.Errorf("jobs %q, want one restart", got)
	}
	h.waitOwner(name, pid)
}

// Without a user manager to reach, the rule's exec starts the app and the
// job says why; without an exec, the job fails and says why.
func TestUnitWithoutUserManager(t *testing.T) {
	noManager := func(c *Config, _ *bustest.Bus) {
		c.UserManager = filepath.Join(t.TempDir(), "systemd", "private")
	}
	h := newHarness(t, `
[[app]]
id = "withexec"
names = ["org.example.WithExec"]
unit = "app-withexec.service"
exec = ["TESTAPP", "-name", "org.example.WithExec", "-mode", "exit"]

[[app]]
id = "noexec"
names = ["org.example.NoExec"]
unit = "app-noexec.service"
`, noManager)
	h.bus.StartApp("-name", "org.example.WithExec", "-mode", "exit")
	h.bus.StartApp("-name", "org.example.NoExec", "-mode", "exit")
	h.waitOwner("org.example.WithExec", 0)
	h.waitOwner("org.example.NoExec", 0)
	rec := h.crash()

	j := jobOf(t, rec, "withexec")
	if j.Outcome != control.Relaunched || !strings.HasPrefix(j.Reason, "started the rule's exec, not unit app-withexec.service: no systemd user manager") {
		t.Errorf("withexec: %s %q, want relaunched from its exec, saying why", j.Outcome, j.Reason)
	}
	if c := h.eng.runningChildren(); len(c) != 1 {
		t.Errorf("busmedic runs %d processes, want the one it started", len(c))
	}
	j = jobOf(t, rec, "noexec")
	if j.Outcome != control.Failed || !strings.Contains(j.Reason, "cannot start unit app-noexec.service: no systemd user manager") ||
		!strings.HasSuffix(j.Reason, "the rule has no exec to start the app otherwise") {
		t.Errorf("noexec: %s %q, want failed, saying why", j.Outcome, j.Reason)
	}
}
