package relaunch

import (
	"strings"
	"testing"
	"time"

	"busmedic/relaunch/control"
	"busmedic/watcher/bustest"
)

// waitResumed waits until the engine has ended a recovery that Resume
// started on bus instance id, and returns it.
func (h *harness) waitResumed(id string) control.Recovery {
	h.t.Helper()
	deadline := time.NewTimer(waitLimit)
	defer deadline.Stop()
	for {
		st := h.eng.Status()
		if r := st.LastRecovery; r != nil && r.ID == id && strings.HasPrefix(r.Decision, resumedDecision) && !r.Ended.IsZero() {
			return *r
		}
		select {
		case <-h.eng.Changed():
		case <-deadline.C:
			h.t.Fatalf("no ended resumed recovery for bus %s within %s; status: %s", id, waitLimit, h.statusString())
		}
	}
}

const exiterRule = `
[[app]]
id = "exiter"
names = ["org.example.Exiter"]
exec = ["TESTAPP", "-name", "org.example.Exiter", "-mode", "exit"]
grace = "100ms"
`

// An app whose job a pause skipped comes back at Resume, in a recovery of
// its own of the same bus instance, recorded in the history after the
// recovery that skipped it.
func TestResumeRecoversSkippedApps(t *testing.T) {
	h := newHarness(t, exiterRule)
	h.bus.StartApp("-name", "org.example.Exiter", "-mode", "exit")
	old := h.waitOwner("org.example.Exiter", 0)
	h.eng.Pause()
	rec := h.crash()
	if j := jobOf(t, rec, "exiter"); j.Outcome != control.Skipped || j.Reason != skipPaused {
		t.Fatalf("paused: %s %q", j.Outcome, j.Reason)
	}
	if pid := h.owner("org.example.Exiter"); pid != 0 {
		t.Fatalf("org.example.Exiter owned by pid %d while paused", pid)
	}
	h.eng.Resume()
	res := h.waitResumed(rec.ID)
	j := jobOf(t, res, "exiter")
	if j.Outcome != control.Relaunched {
		t.Fatalf("resumed job %s %q, want relaunched", j.Outcome, j.Reason)
	}
	if pid := h.waitOwner("org.example.Exiter", old); pid != j.PID {
		t.Errorf("owner %d, job pid %d", pid, j.PID)
	}
	if res.OldID != rec.OldID || res.Downtime != rec.Downtime || len(res.Jobs) != 1 {
		t.Errorf("resumed recovery %+v, want the bus instance of %+v and one job", res, rec)
	}
	if s, _ := Summary(res); s != "Recovery resumed on the session bus: 1 app relaunched" {
		t.Errorf("summary %q", s)
	}
	hist := h.history()
	if len(hist) != 2 || !strings.HasPrefix(hist[0].Decision, resumedDecision) || hist[1].ID != rec.ID {
		t.Errorf("history %+v, want the skipping recovery then the resumed one", hist)
	}
	// Resumed twice: nothing is left to recover.
	h.eng.Pause()
	h.eng.Resume()
	if st := h.eng.Status(); st.LastRecovery == nil || !st.LastRecovery.Started.Equal(res.Started) {
		t.Errorf("a second Resume started another recovery: %+v", st.LastRecovery)
	}
	if procs := countProcs(t, ownsArg("org.example.Exiter")); len(procs) != 1 {
		t.Errorf("processes %v, want 1", procs)
	}
}

// What a pause skipped on a bus instance that has gone since is not
// recovered at Resume: it fell off a bus that no longer exists.
func TestResumeOnlyForTheCurrentBus(t *testing.T) {
	h := newHarness(t, exiterRule)
	h.bus.StartApp("-name", "org.example.Exiter", "-mode", "exit")
	h.waitOwner("org.example.Exiter", 0)
	h.eng.Pause()
	first := h.crash()
	if j := jobOf(t, first, "exiter"); j.Outcome != control.Skipped {
		t.Fatalf("paused: %s %q", j.Outcome, j.Reason)
	}
	second := h.crash()
	// Resume starts its recovery before it returns, if any.
	h.eng.Resume()
	st := h.eng.Status()
	if r := st.LastRecovery; r == nil || r.ID != second.ID || strings.HasPrefix(r.Decision, resumedDecision) {
		t.Errorf("last recovery %+v, want the second restart's, and none resumed", r)
	}
	if procs := countProcs(t, ownsArg("org.example.Exiter")); len(procs) != 0 {
		t.Errorf("processes %v, want none", procs)
	}
}

// Resumed while the recovery that skipped an app still runs (another app
// waits for a name in its after): the app comes back once that recovery
// has ended, in a recovery of its own, and the job still waiting acts as
// if there had been no pause. The pause comes after the plan (a plan made
// while paused skips every job at once): each app waits for a name of its
// after, which the test starts when it wants the job to go on.
func TestResumeDuringRecovery(t *testing.T) {
	h := newHarness(t, `
[[app]]
id = "exiter"
names = ["org.example.Exiter"]
exec = ["TESTAPP", "-name", "org.example.Exiter", "-mode", "exit"]
after = ["org.example.Gate1"]
grace = "100ms"

[[app]]
id = "waiter"
names = ["org.example.Waiter"]
exec = ["TESTAPP", "-name", "org.example.Waiter", "-mode", "exit"]
after = ["org.example.Gate2"]
grace = "100ms"
`)
	h.bus.StartApp("-name", "org.example.Exiter", "-mode", "exit")
	h.bus.StartApp("-name", "org.example.Waiter", "-mode", "exit")
	h.waitOwner("org.example.Exiter", 0)
	h.waitOwner("org.example.Waiter", 0)
	h.bus.Kill()
	h.bus.Start()
	id := h.waitUp()
	outcomes := func() (exiter, waiter control.Outcome) {
		r := h.eng.Status().LastRecovery
		if r == nil || r.ID != id || !r.Ended.IsZero() {
			return "", ""
		}
		for _, j := range r.Jobs {
			switch j.App {
			case "exiter":
				exiter = j.Outcome
			case "waiter":
				waiter = j.Outcome
			}
		}
		return exiter, waiter
	}
	h.until("both jobs waiting for their after", func() bool {
		e, w := outcomes()
		return e == control.Running && w == control.Running
	})
	h.eng.Pause()
	h.bus.StartApp("-name", "org.example.Gate1", "-mode", "exit")
	h.until("exiter skipped while waiter waits", func() bool {
		e, w := outcomes()
		return e == control.Skipped && w == control.Running
	})
	h.eng.Resume()
	if st := h.eng.Status(); st.LastRecovery == nil || strings.HasPrefix(st.LastRecovery.Decision, resumedDecision) {
		t.Fatalf("Resume started a recovery beside the running one: %+v", st.LastRecovery)
	}
	h.bus.StartApp("-name", "org.example.Gate2", "-mode", "exit")
	res := h.waitResumed(id)
	if j := jobOf(t, res, "exiter"); j.Outcome != control.Relaunched || len(res.Jobs) != 1 {
		t.Errorf("resumed recovery %+v, want exiter relaunched alone", res)
	}
	hist := h.history()
	if len(hist) != 2 || hist[1].ID != id {
		t.Fatalf("history %+v, want the recovery of the restart then the resumed one", hist)
	}
	if j := jobOf(t, hist[1], "waiter"); j.Outcome != control.Relaunched {
		t.Errorf("waiter %s %q, want relaunched", j.Outcome, j.Reason)
	}
	if j := jobOf(t, hist[1], "exiter"); j.Outcome != control.Skipped || j.Reason != skipPaused {
		t.Errorf("exiter %s %q in the restart's recovery, want skipped (paused)", j.Outcome, j.Reason)
	}
	h.waitOwner("org.example.Exiter", 0)
	h.waitOwner("org.example.Waiter", 0)
}

// A deaf old copy whose new copy the bus started while recovery was
// paused stays until Resume, and is stopped then.
func TestDeafCopyHeldWhilePaused(t *testing.T) {
	d := newDeafBus(t, noRules)
	old := d.ask()
	oldStart := startTime(t, old)
	d.eng.Pause()
	d.restartWith((*bustest.Bus).Kill)
	held := d.eng.deafHeld.Load()
	newPID := d.ask()
	d.until("the deaf copy held", func() bool { return d.eng.deafHeld.Load() > held })
	if !alive(old, oldStart) {
		t.Fatalf("the old copy (pid %d) was stopped while paused", old)
	}
	if n := d.eng.deafSettled.Load(); n != 0 {
		t.Fatalf("%d deaf copies settled while paused: the pause must hold the stop, not drop it", n)
	}
	d.eng.Resume()
	d.waitSettled(1)
	if !exitedWithin(old, oldStart, waitLimit) {
		t.Fatalf("the old copy (pid %d) still runs after Resume", old)
	}
	if got := d.copies(); len(got) != 1 || got[0] != newPID {
		t.Errorf("copies running: %v, want only the new one %d", got, newPID)
	}
	if stops := d.stops(); len(stops) != 1 || stops[0].Outcome != control.Stopped || stops[0].PID != old {
		t.Errorf("stop jobs in the history: %+v, want the old copy stopped", stops)
	}
}
