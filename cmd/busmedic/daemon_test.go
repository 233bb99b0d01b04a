package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"busmedic/relaunch/control"
	"busmedic/watcher/bustest"
)

// session is a whole test session: a session bus, a system bus with a
// stand-in logind, the XDG directories, and busmedic run.
type session struct {
	t       *testing.T
	bus     *bustest.Bus
	system  *bustest.Bus
	logind  *bustest.Logind
	env     []string
	dir     string
	socket  string
	daemon  *exec.Cmd
	log     *syncBuffer
	exited  chan struct{}
	updates <-chan control.Status
	x       *bustest.Display
	last    control.Status
}

func newSession(t *testing.T, rules string, busOpts ...bustest.Option) *session {
	t.Helper()
	return newSessionBuses(t, rules, busOpts, nil)
}

// newSessionBuses is newSession with options for the system bus too.
func newSessionBuses(t *testing.T, rules string, sessionOpts, systemOpts []bustest.Option) *session {
	t.Helper()
	s := &session{t: t, bus: bustest.New(t, sessionOpts...), system: bustest.New(t, append([]bustest.Option{bustest.SystemType()}, systemOpts...)...)}
	s.logind = s.system.StartLogind()
	s.dir = t.TempDir()
	for _, d := range []string{"run", "config/busmedic", "state", "sysconfig"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.dir, "config/busmedic/apps.toml"), []byte(rules), 0o600); err != nil {
		t.Fatal(err)
	}
	s.socket = filepath.Join(s.dir, "run/busmedic/control.sock")
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "DISPLAY", "WAYLAND_DISPLAY", "XDG_SESSION_ID", "DBUS_SESSION_BUS_ADDRESS", "DBUS_SYSTEM_BUS_ADDRESS",
			"XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_CONFIG_DIRS", "XDG_STATE_HOME", "BUSMEDIC_CONFIG":
			continue
		}
		s.env = append(s.env, kv)
	}
	s.env = append(s.env,
		"DBUS_SESSION_BUS_ADDRESS="+s.bus.Address(),
		"DBUS_SYSTEM_BUS_ADDRESS="+s.system.Address(),
		"XDG_RUNTIME_DIR="+filepath.Join(s.dir, "run"),
		"XDG_CONFIG_HOME="+filepath.Join(s.dir, "config"),
		"XDG_CONFIG_DIRS="+filepath.Join(s.dir, "sysconfig"),
		"XDG_STATE_HOME="+filepath.Join(s.dir, "state"),
		"XDG_SESSION_ID=1",
	)
	return s
}

// start runs busmedic run and waits until it serves its control socket.
func (s *session) start(args ...string) {
	s.t.Helper()
	s.daemon = exec.Command(busmedicBinary(s.t), append([]string{"run", "--no-tray", "-v"}, args...)...)
	s.daemon.Env = s.env
	s.daemon.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := s.daemon.StderrPipe()
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.daemon.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.log = &syncBuffer{changed: make(chan struct{}, 1)}
	ready := make(chan struct{})
	s.exited = make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		said := false
		for sc.Scan() {
			s.log.WriteLine(sc.Text())
			if strings.Contains(sc.Text(), "busmedic running") && !said {
				close(ready)
				said = true
			}
		}
		s.daemon.Wait()
		close(s.exited)
	}()
	s.t.Cleanup(func() {
		s.daemon.Process.Kill()
		<-s.exited
		// A panic in any goroutine of busmedic run ends it with the
		// trace on stderr: it fails the test, whatever else the test
		// looked at.
		if line, ok := panicked(s.log.String()); ok {
			s.t.Errorf("busmedic run panicked: %s", line)
		}
		if s.t.Failed() {
			s.t.Logf("busmedic run log:\n%s", s.log)
		}
	})
	select {
	case <-ready:
	case <-s.exited:
		s.t.Fatalf("busmedic run exited: %s", s.log)
	case <-time.After(deadline):
		s.t.Fatalf("busmedic run not ready within %s: %s", deadline, s.log)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.t.Cleanup(cancel)
	c, err := control.Dial(ctx, s.socket)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { c.Close() })
	if s.updates, err = c.Watch(ctx); err != nil {
		s.t.Fatal(err)
	}
}

// syncBuffer collects the daemon's log, for failure messages and for
// waiting on what the daemon says.
type syncBuffer struct {
	mu      sync.Mutex
	b       strings.Builder
	changed chan struct{}
}

func (b *syncBuffer) WriteLine(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b.WriteString(s + "\n")
	select {
	case b.changed <- struct{}{}:
	default:
	}
}

// waitLog waits until the daemon has logged a line containing text.
func (s *session) waitLog(text string) {
	s.t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for !strings.Contains(s.log.String(), text) {
		select {
		case <-s.log.changed:
		case <-s.exited:
			// Its log is complete: the reader closes exited after it.
			if !strings.Contains(s.log.String(), text) {
				s.t.Fatalf("busmedic run exited without logging %q", text)
			}
		case <-timer.C:
			s.t.Fatalf("busmedic run did not log %q within %s:\n%s", text, deadline, s.log)
		}
	}
}

// waitLogCount waits until the daemon has logged text n times.
func (s *session) waitLogCount(text string, n int) {
	s.t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for strings.Count(s.log.String(), text) < n {
		select {
		case <-s.log.changed:
		case <-s.exited:
			if strings.Count(s.log.String(), text) < n {
				s.t.Fatalf("busmedic run exited without logging %q %d times", text, n)
			}
		case <-timer.C:
			s.t.Fatalf("busmedic run did not log %q %d times within %s:\n%s", text, n, deadline, s.log)
		}
	}
}

// alive fails the test if busmedic run has exited.
func (s *session) alive(after string) {
	s.t.Helper()
	select {
	case <-s.exited:
		s.t.Fatalf("busmedic run exited after %s (%v)", after, s.daemon.ProcessState)
	default:
	}
}

// panicked returns the first line of a Go panic or fatal runtime error in
// a program's stderr.
func panicked(stderr string) (string, bool) {
	for line := range strings.Lines(stderr) {
		if strings.HasPrefix(line, "panic: ") || strings.HasPrefix(line, "fatal error: ") {
			return strings.TrimSpace(line), true
		}
	}
	return "", false
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// await waits for a status that satisfies ok.
func (s *session) await(what string, ok func(control.Status) bool) control.Status {
	s.t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		if ok(s.last) {
			return s.last
		}
		select {
		case st, open := <-s.updates:
			if !open {
				s.t.Fatalf("waiting for %s: daemon gone: %s", what, s.log)
			}
			s.last = st
		case <-timer.C:
			js, _ := json.MarshalIndent(s.last, "", "  ")
			s.t.Fatalf("waiting for %s: not within %s; last status:\n%s", what, deadline, js)
		}
	}
}

// cli runs a busmedic client command in the session and returns its stdout.
func (s *session) runCLI(args ...string) string {
	s.t.Helper()
	cmd := exec.Command(busmedicBinary(s.t), args...)
	cmd.Env = s.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("busmedic %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

func busUp(name string, up bool) func(control.Status) bool {
	return func(st control.Status) bool {
		for _, b := range st.Buses {
			if b.Name == name {
				return b.Up == up
			}
		}
		return false
	}
}

func app(st control.Status, id string) control.AppStatus {
	for _, a := range st.Apps {
		if a.ID == id {
			return a
		}
	}
	return control.AppStatus{}
}

func TestRunRecoversAnApp(t *testing.T) {
	exe := bustest.TestApp(t)
	s := newSession(t, fmt.Sprintf(`version = 1
[[app]]
id = "exiter"
names = ["org.example.Exiter"]
exe = %q
exec = [%q, "-name", "org.example.Exiter"]
grace = "100ms"
`, exe, exe))
	first := s.bus.StartApp("-name", "org.example.Exiter")
	s.start()
	s.await("the app running", func(st control.Status) bool {
		return busUp("session", true)(st) && app(st, "exiter").Running
	})

	// A bus started by someone else cannot be restarted by busmedic: the
	// status says why, for the tray to grey out its item, once the daemon
	// has found out (on the bus's Up, never while asked for the status).
	s.await("why the session bus cannot be restarted", func(st control.Status) bool {
		return strings.Contains(st.SessionRestartRefused, fmt.Sprintf("pid %d", s.bus.PID()))
	})
	if why := s.last.SessionRestartRefusal; why == nil || why.PID != s.bus.PID() || why.Reason != s.last.SessionRestartRefused {
		t.Errorf("status refusal %+v; want the bus pid %d and the reason", why, s.bus.PID())
	}

	s.bus.Kill()
	<-first.Exited()
	s.await("the session bus down", busUp("session", false))
	// The control socket answers while the bus is down.
	var st control.Status
	if err := json.Unmarshal([]byte(s.runCLI("status", "--json")), &st); err != nil || !busUp("session", false)(st) {
		t.Errorf("busmedic status --json while down: %+v, %v", st, err)
	}

	s.bus.Start()
	st = s.await("the app relaunched", func(st control.Status) bool {
		a := app(st, "exiter")
		return a.Running && a.Last != nil && a.Last.Outcome == control.Relaunched
	})
	pid := app(st, "exiter").Last.PID
	if pid == 0 || pid == first.PID() {
		t.Errorf("relaunched pid %d (first was %d)", pid, first.PID())
	}

	var history []control.Recovery
	if err := json.Unmarshal([]byte(s.runCLI("history", "--json")), &history); err != nil {
		t.Fatal(err)
	}
	if len(history) != 1 || len(history[0].Jobs) != 1 || history[0].Jobs[0].Outcome != control.Relaunched {
		t.Errorf("history = %+v, want one recovery that relaunched exiter", history)
	}
	if out := s.runCLI("status"); !strings.Contains(out, "exiter") || !strings.Contains(out, "relaunched") {
		t.Errorf("busmedic status:\n%s\nwant exiter relaunched", out)
	}

	// One daemon per user.
	second := exec.Command(busmedicBinary(t), "run", "--no-tray")
	second.Env = s.env
	out, err := second.CombinedOutput()
	if second.ProcessState.ExitCode() != exitError || !strings.Contains(string(out), "already running") {
		t.Errorf("second busmedic run: %v\n%s", err, out)
	}

	// SIGTERM ends the daemon cleanly and leaves the app it started.
	s.daemon.Process.Signal(syscall.SIGTERM)
	<-s.exited
	if code := s.daemon.ProcessState.ExitCode(); code != 0 {
		t.Errorf("busmedic run after SIGTERM: exit %d", code)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Errorf("the relaunched app (pid %d) did not outlive busmedic: %v", pid, err)
	}
	syscall.Kill(pid, syscall.SIGKILL)
}

// TestRunSurvivesBusLossWhileNotifying: after a recovery the daemon shows
// a summary, and with no notification server in the session it waits for
// one. The session bus going away meanwhile, stopped or killed, ends that
// wait, not the daemon (it died of a nil signal from the closed
// connection, issue 14), and the next recovery works.
func TestRunSurvivesBusLossWhileNotifying(t *testing.T) {
	s := newSession(t, exiterRules(t))
	exiter := s.bus.StartApp("-name", "org.example.Exiter")
	s.start()
	s.await("the app running", func(st control.Status) bool { return app(st, "exiter").Running })
	s.bus.Kill()
	<-exiter.Exited()
	s.bus.Start()
	pid := 0
	relaunched := func(st control.Status) bool {
		a := app(st, "exiter")
		return a.Running && a.Last != nil && a.Last.Outcome == control.Relaunched && a.Last.PID != pid
	}
	pid = app(s.await("the app relaunched", relaunched), "exiter").Last.PID
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })

	for i, lose := range []struct {
		how  string
		stop func()
	}{{"SIGTERM", s.bus.Stop}, {"SIGKILL", s.bus.Kill}} {
		s.waitLogCount("waiting for a notification server", i+1)
		lose.stop()
		s.waitLogCount(`msg="recovery summary not shown"`, i+1)
		s.alive("the session bus got " + lose.how + " while the summary waited")
		s.bus.Start()
		// The app went with its bus; the daemon starts it again.
		pid = app(s.await("the app relaunched again", relaunched), "exiter").Last.PID
	}
	for line := range strings.Lines(s.log.String()) {
		if strings.Contains(line, "recovery summary not shown") && !strings.Contains(line, "session bus connection lost") {
			t.Errorf("summary not shown for another reason than the bus loss: %s", line)
		}
	}
}

// TestRunAskSurvivesBusRestart: an update of a bus daemon makes the
// daemon ask whether to restart the bus (restart_after_update = "ask", the
// default), and with no notification server in the session the question
// waits for one. Restarting the session bus meanwhile ends that wait, not
// the daemon (it died of a nil signal from the closed connection, issue
// 14). An outdated session bus is then restarted: nothing is left to ask.
// A question about the system bus is asked again on the new session bus.
func TestRunAskSurvivesBusRestart(t *testing.T) {
	t.Run("session bus outdated", func(t *testing.T) {
		s := newSession(t, "version = 1\n", bustest.CopiedBinary())
		s.start()
		s.await("the session bus up", busUp("session", true))
		before := sessionID(s.last)
		s.bus.Update()
		s.waitLog("waiting for a notification server")
		s.bus.Restart()
		s.waitLog("outcome=cancelled")
		s.await("the session bus back", func(st control.Status) bool { return sessionID(st) != "" && sessionID(st) != before })
		s.alive("the session bus restarted while the question waited")
	})
	t.Run("system bus outdated", func(t *testing.T) {
		s := newSessionBuses(t, "version = 1\n", nil, []bustest.Option{bustest.CopiedBinary()})
		s.start()
		s.await("both buses up", func(st control.Status) bool { return busUp("session", true)(st) && busUp("system", true)(st) })
		s.system.Update()
		s.waitLog("waiting for a notification server")
		s.bus.Restart()
		s.waitLog("asking again once the session bus is back")
		s.alive("the session bus restarted while the question waited")
		s.waitLogCount("waiting for a notification server", 2)
	})
}
