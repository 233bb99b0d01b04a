package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"busmedic/relaunch/control"
	"busmedic/watcher/bustest"
)

// exiterRules is a rules file for one app that exits with its bus.
func exiterRules(t *testing.T) string {
	exe := bustest.TestApp(t)
	return fmt.Sprintf(`version = 1
[[app]]
id = "exiter"
names = ["org.example.Exiter"]
exe = %q
exec = [%q, "-name", "org.example.Exiter"]
grace = "100ms"
`, exe, exe)
}

// readHistory reads the daemon's history file directly: the daemon may be
// gone.
func (s *session) readHistory() []control.Recovery {
	s.t.Helper()
	f, err := os.Open(filepath.Join(s.dir, "state/busmedic/history.jsonl"))
	if err != nil {
		s.t.Fatalf("history: %v", err)
	}
	defer f.Close()
	var out []control.Recovery
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r control.Recovery
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			s.t.Fatalf("history line %q: %v", sc.Text(), err)
		}
		out = append(out, r)
	}
	return out
}

// waitExit waits for busmedic run to exit by itself and returns its status.
func (s *session) waitExit(what string) int {
	s.t.Helper()
	select {
	case <-s.exited:
		return s.daemon.ProcessState.ExitCode()
	case <-time.After(deadline):
		s.t.Fatalf("busmedic run did not exit after %s:\n%s", what, s.log)
		return -1
	}
}

// noExiterRunning checks that no process of the test app runs on this
// session's bus: nothing was started after the session ended. Processes on
// other buses belong to other tests, run at the same time.
func (s *session) noExiterRunning() {
	s.t.Helper()
	exe := bustest.TestApp(s.t)
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		link, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil || link != exe {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		environ, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if strings.Contains(string(cmdline), "org.example.Exiter") &&
			strings.Contains(string(environ), "DBUS_SESSION_BUS_ADDRESS="+s.bus.Address()+"\x00") {
			s.t.Errorf("an Exiter process runs (pid %s): something was started in an ending session", e.Name())
		}
	}
}

func TestSessionEndingStartsNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(*session)
		why  string
	}{
		{"logind session closing", func(s *session) { s.logind.SetState("closing") }, "closing"},
		// The last session of a user who does not linger ended; the
		// session's own state may never have been seen closing.
		{"logind user closing", func(s *session) { s.logind.SetUserState("closing") }, "its last login session ended"},
		{"PrepareForShutdown", func(s *session) { s.logind.PrepareForShutdown(true) }, "shutting down"},
		{"X server gone", func(s *session) { s.x.Stop() }, "X server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSession(t, exiterRules(t))
			s.startXvfb()
			exiter := s.bus.StartApp("-name", "org.example.Exiter")
			s.start()
			s.await("the app running", func(st control.Status) bool { return app(st, "exiter").Running })
			// The daemon follows logind once it has read the session's state.
			s.waitLog("state=active")
			tc.end(s)
			if tc.why == "closing" {
				s.waitLog("state=closing")
			} else if tc.why == "shutting down" {
				s.waitLog("shutdown=true")
			}
			s.bus.Kill()
			<-exiter.Exited()
			if code := s.waitExit("the session ended"); code != 0 {
				t.Errorf("busmedic run exit status %d, want 0", code)
			}
			s.bus.Start()
			h := s.readHistory()
			if len(h) != 1 || !strings.Contains(h[0].Decision, "session ending") || !strings.Contains(h[0].Decision, tc.why) ||
				len(h[0].Jobs) != 1 || h[0].Jobs[0].Outcome != control.Skipped {
				t.Errorf("history = %+v; want one recovery skipped because the session is ending (%s)", h, tc.why)
			}
			s.noExiterRunning()
		})
	}
}

// A plain crash with the session active recovers (TestRunRecoversAnApp);
// busmedic stopped by SIGTERM while the bus is down starts nothing.
func TestStoppedWhileBusDown(t *testing.T) {
	s := newSession(t, exiterRules(t))
	exiter := s.bus.StartApp("-name", "org.example.Exiter")
	s.start()
	s.await("the app running", func(st control.Status) bool { return app(st, "exiter").Running })
	s.bus.Kill()
	<-exiter.Exited()
	s.await("the session bus down", busUp("session", false))
	s.daemon.Process.Signal(syscall.SIGTERM)
	if code := s.waitExit("SIGTERM"); code != 0 {
		t.Errorf("busmedic run exit status %d, want 0", code)
	}
	s.bus.Start()
	s.noExiterRunning()
}

// startXvfb gives the session a display, for the daemon to watch.
func (s *session) startXvfb() {
	s.t.Helper()
	s.x = bustest.StartXvfb(s.t, 640, 480)
	s.env = append(s.env, "DISPLAY="+s.x.Name)
}
