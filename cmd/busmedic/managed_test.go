package main

import (
	"strings"
	"syscall"
	"testing"

	"busmedic/relaunch/control"
)

// In managed mode busmedic runs the session bus itself; "busmedic
// restart-bus" restarts it and the apps come back.
func TestRestartManagedBus(t *testing.T) {
	s := newSession(t, exiterRules(t))
	s.bus.Stop() // busmedic runs the bus at this address from now on
	s.start("--manage-session-bus")
	s.await("the managed session bus up", busUp("session", true))
	before := sessionID(s.last)
	s.await("the restart method known", func(st control.Status) bool { return st.SessionRestart != "" })
	if s.last.SessionRestartRefused != "" {
		t.Errorf("managed bus refused: %s", s.last.SessionRestartRefused)
	}
	exiter := s.bus.StartApp("-name", "org.example.Exiter")
	s.await("the app running", func(st control.Status) bool { return app(st, "exiter").Running })

	if out := s.runCLI("restart-bus"); !strings.Contains(out, "restarting") {
		t.Errorf("busmedic restart-bus said %q", out)
	}
	<-exiter.Exited()
	st := s.await("the app relaunched on the new bus", func(st control.Status) bool {
		a := app(st, "exiter")
		return sessionID(st) != before && a.Running && a.Last != nil && a.Last.Outcome == control.Relaunched
	})
	pid := app(st, "exiter").Last.PID
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	if pid == exiter.PID() {
		t.Errorf("relaunched pid %d is the old one", pid)
	}
}

func sessionID(st control.Status) string {
	for _, b := range st.Buses {
		if b.Name == "session" && b.Up {
			return b.ID
		}
	}
	return ""
}
