package relaunch

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"busmedic/relaunch/control"
)

// The signal action: an app that stays alive off the bus and reconnects on
// its reload signal is sent that signal once the bus is back, and the very
// same process owns its name again; nothing is started.
func TestSignalAction(t *testing.T) {
	const name = "org.example.Reloader"
	h := newHarness(t, `
[[app]]
id = "reloader"
names = ["org.example.Reloader"]
action = "signal"
signal = "SIGUSR1"
grace = "200ms"
`)
	app := h.bus.StartApp("-name", name, "-mode", "signal")
	if pid := h.waitOwner(name, 0); pid != app.PID() {
		t.Fatalf("%s owned by pid %d, want the app %d", name, pid, app.PID())
	}
	rec := h.crash()

	j := jobOf(t, rec, "reloader")
	if j.Action != "signal" || j.Outcome != control.Signalled || j.Reason != "" || j.PID != app.PID() {
		t.Errorf("job: action %q outcome %s (%q) pid %d, want signal signalled pid %d", j.Action, j.Outcome, j.Reason, j.PID, app.PID())
	}
	if len(rec.Jobs) != 1 {
		t.Errorf("%d jobs, want 1: %+v", len(rec.Jobs), rec.Jobs)
	}
	// The same process, not a new one, owns the name on the new bus.
	if pid := h.waitOwner(name, 0); pid != app.PID() {
		t.Errorf("%s owned by pid %d after the restart, want the original %d", name, pid, app.PID())
	}
	select {
	case <-app.Exited():
		t.Errorf("the app (pid %d) exited", app.PID())
	default:
	}
	if procs := countProcs(t, ownsArg(name)); !slices.Equal(procs, []int{app.PID()}) {
		t.Errorf("processes %v, want only the original %d", procs, app.PID())
	}
	if n := len(h.eng.runningChildren()); n != 0 {
		t.Errorf("the engine started %d processes", n)
	}
	h.until("the engine to see the app back", func() bool {
		st := h.eng.Status()
		return len(st.Apps) == 1 && st.Apps[0].Running && slices.Equal(st.Apps[0].PIDs, []int{app.PID()})
	})
	if a := h.eng.Status().Apps[0]; a.Last == nil || a.Last.Outcome != control.Signalled {
		t.Errorf("status: last job %+v, want signalled", a.Last)
	}
	hist := h.history()
	if len(hist) != 1 || hist[0].ID != rec.ID || len(hist[0].Jobs) != 1 || hist[0].Jobs[0].Outcome != control.Signalled {
		t.Errorf("history: %+v, want one recovery with the app signalled", hist)
	}
}

// A signal rule whose process has gone (it exited with its bus) signals
// nothing, starts nothing, and the job fails saying so. "Relaunch now"
// then starts the app: there is nothing left to signal.
func TestSignalActionProcessGone(t *testing.T) {
	const name = "org.example.Quitter"
	h := newHarness(t, `
[[app]]
id = "quitter"
names = ["org.example.Quitter"]
action = "signal"
signal = "SIGUSR1"
grace = "100ms"
`)
	app := h.bus.StartApp("-name", name, "-mode", "exit")
	h.waitOwner(name, 0)
	h.bus.Kill()
	select {
	case <-app.Exited():
	case <-time.After(waitLimit):
		t.Fatalf("the app (pid %d) did not exit with its bus within %s", app.PID(), waitLimit)
	}
	h.bus.Start()
	rec := h.waitRecovery(h.waitUp())

	j := jobOf(t, rec, "quitter")
	if j.Outcome != control.Failed || j.Reason != "no process to signal: it has exited" {
		t.Errorf("job %s %q, want failed: no process to signal: it has exited", j.Outcome, j.Reason)
	}
	if n := len(h.eng.runningChildren()); n != 0 {
		t.Errorf("the engine started %d processes", n)
	}
	if procs := countProcs(t, ownsArg(name)); len(procs) != 0 {
		t.Errorf("processes %v, want none", procs)
	}
	if pid := h.owner(name); pid != 0 {
		t.Errorf("%s owned by pid %d, want nobody", name, pid)
	}
	hist := h.history()
	if len(hist) != 1 || len(hist[0].Jobs) != 1 || hist[0].Jobs[0].Outcome != control.Failed {
		t.Errorf("history: %+v, want one recovery with the job failed", hist)
	}

	now, err := h.eng.RelaunchNow(context.Background(), "quitter")
	if err != nil || now.Action != "relaunch" || now.Outcome != control.Relaunched {
		t.Fatalf("RelaunchNow = %+v, %v; want the app relaunched", now, err)
	}
	if pid := h.waitOwner(name, 0); pid != now.PID {
		t.Errorf("%s owned by pid %d, want the relaunched %d", name, pid, now.PID)
	}
}

// A signal that ends the app instead of bringing it back fails the job as
// soon as the app exits, not after ready_timeout (ten minutes here).
func TestSignalEndsApp(t *testing.T) {
	const name = "org.example.Fragile"
	h := newHarness(t, `
[[app]]
id = "fragile"
names = ["org.example.Fragile"]
action = "signal"
signal = "SIGHUP"
grace = "100ms"
ready_timeout = "10m"
`)
	// A deaf app does not catch SIGHUP, which ends a Go program.
	app := h.bus.StartApp("-name", name, "-mode", "deaf")
	h.waitOwner(name, 0)
	rec := h.crash()
	j := jobOf(t, rec, "fragile")
	want := fmt.Sprintf("pid %d exited after SIGHUP instead of coming back", app.PID())
	if j.Outcome != control.Failed || j.Reason != want || j.PID != app.PID() {
		t.Errorf("job %s %q pid %d, want failed %q pid %d", j.Outcome, j.Reason, j.PID, want, app.PID())
	}
}
