package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"busmedic/daemon"
	"busmedic/relaunch/control"
)

// keptSession is a session whose kept apps and keeper the test ends: they
// run detached, on no bus the bus's own cleanup knows of.
func keptSession(t *testing.T, rules string) (*session, string) {
	t.Helper()
	s := newSession(t, rules)
	keepSocket := filepath.Join(s.dir, "run/busmedic/keep-session.sock")
	t.Cleanup(func() {
		if t.Failed() {
			log, _ := os.ReadFile(strings.TrimSuffix(keepSocket, ".sock") + ".log")
			t.Logf("keeper log:\n%s", log)
		}
		killBusProcesses("unix:path=" + dbus.EscapeBusAddressValue(keepSocket)) // the kept apps
		killBusProcesses(s.bus.Address())                                       // the keeper, apps busmedic started
	})
	return s, keepSocket
}

// startKept runs "busmedic keep -- dbus-test-tool echo --name=NAME" in the
// session, and returns the process, which becomes the app.
func (s *session) startKept(name string) *exec.Cmd {
	s.t.Helper()
	cmd := exec.Command(busmedicBinary(s.t), "keep", "--", "dbus-test-tool", "echo", "--name="+name)
	cmd.Env = s.env
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// ping calls a method of name on the real bus and fails the test unless
// it answers (dbus-test-tool echo answers every call).
func ping(t *testing.T, address, name string) {
	t.Helper()
	conn, err := dbus.Connect(address)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	if err := conn.Object(name, "/").CallWithContext(ctx, "org.example.Echo.Ping", 0).Err; err != nil {
		t.Fatalf("%s does not answer: %v", name, err)
	}
}

// keepers are the keeper processes of the session's bus.
func keepers(s *session) []int {
	return busProcesses(s.bus.Address(), "\x00"+daemon.KeeperCommand+"\x00")
}

// oneKeeper fails the test unless, of the session's keeper processes, all
// but one exit within the deadline: a keeper that lost the lock to another
// exits at once, but not in no time.
func oneKeeper(t *testing.T, s *session) {
	t.Helper()
	var fds []unix.PollFd
	for _, pid := range keepers(s) {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue // gone
		}
		defer unix.Close(fd)
		fds = append(fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
	}
	end := time.Now().Add(deadline)
	for len(fds) > 1 {
		n, err := unix.Poll(fds, int(time.Until(end)/time.Millisecond))
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			t.Fatalf("%d keeper processes after %s, want one: %v", len(fds), deadline, keepers(s))
		}
		fds = slices.DeleteFunc(fds, func(f unix.PollFd) bool { return f.Revents != 0 })
	}
	if len(fds) == 0 {
		t.Fatal("no keeper process")
	}
}

// kept returns the status's kept apps by pid.
func kept(st control.Status) map[int]control.KeptApp {
	out := map[int]control.KeptApp{}
	for _, a := range st.Kept {
		out[a.PID] = a
	}
	return out
}

// The whole "busmedic keep" story with the real binary and a real bus:
// two apps kept at once start one keeper; they keep their pid and answer
// after SIGTERM and SIGKILL restarts; status, history and watch tell it;
// the keeper outlives the daemon and tells the new one.
func TestKeep(t *testing.T) {
	s, _ := keptSession(t, "version = 1\n")
	s.start()
	s.await("the session bus up", busUp("session", true))

	names := []string{"org.example.KeptA", "org.example.KeptB"}
	var pids []int
	for _, n := range names {
		pids = append(pids, s.startKept(n).Process.Pid)
	}
	s.await("both apps kept with their names", func(st control.Status) bool {
		k := kept(st)
		return len(k) == 2 && len(k[pids[0]].Names) == 1 && len(k[pids[1]].Names) == 1
	})
	oneKeeper(t, s) // for two concurrent busmedic keep
	for _, n := range names {
		ping(t, s.bus.Address(), n)
	}

	// busmedic watch prints each replay as it happens.
	watch := exec.Command(busmedicBinary(t), "watch", "--bus", "session")
	watch.Env = s.env
	out, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { watch.Process.Kill(); watch.Wait() })
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// waitLines waits for a line with each of what, in any order.
	waitLines := func(what ...string) {
		t.Helper()
		timer := time.NewTimer(deadline)
		defer timer.Stop()
		for len(what) > 0 {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("busmedic watch ended before %q", what)
				}
				what = slices.DeleteFunc(what, func(w string) bool { return strings.Contains(l, w) })
			case <-timer.C:
				t.Fatalf("busmedic watch did not print %q within %s", what, deadline)
			}
		}
	}
	waitLines("session up")

	prev := "" // the recovery of the last restart
	for i, tc := range []struct {
		name    string
		restart func()
	}{
		{"SIGTERM", func() { s.bus.Stop(); s.bus.Start() }},
		{"SIGKILL", func() { s.bus.Kill(); s.bus.Start() }},
	} {
		tc.restart()
		st := s.await(tc.name+": both apps kept through the restart", func(st control.Status) bool {
			k := kept(st)
			return len(k) == 2 && k[pids[0]].Restarts == i+1 && k[pids[1]].Restarts == i+1 &&
				st.LastRecovery != nil && st.LastRecovery.ID != prev && !st.LastRecovery.Ended.IsZero() && len(st.LastRecovery.Jobs) == 2
		})
		prev = st.LastRecovery.ID
		for _, n := range names {
			ping(t, s.bus.Address(), n)
		}
		for _, j := range st.LastRecovery.Jobs {
			if j.Outcome != control.Kept || j.Action != "keep" || !slices.Contains(pids, j.PID) || !strings.HasPrefix(j.Reason, "kept: reconnected in ") {
				t.Errorf("%s: job %+v, want kept, one of pids %v", tc.name, j, pids)
			}
		}
		if len(st.Casualties) != 0 {
			t.Errorf("%s: casualties %+v, want none: the kept apps and the keeper are no casualties", tc.name, st.Casualties)
		}
		waitLines(fmt.Sprintf("session bus: kept dbus-test-tool (pid %d): 1 name replayed in ", pids[0]),
			fmt.Sprintf("session bus: kept dbus-test-tool (pid %d): 1 name replayed in ", pids[1]))
	}

	// The history: one kept job per app per restart.
	var hist []control.Recovery
	if err := json.Unmarshal([]byte(s.runCLI("history", "--json")), &hist); err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 {
		t.Fatalf("history: %d recoveries, want 2: %+v", len(hist), hist)
	}
	for _, r := range hist {
		var apps []string
		for _, j := range r.Jobs {
			apps = append(apps, j.App)
		}
		slices.Sort(apps)
		want := []string{fmt.Sprintf("kept:dbus-test-tool:%d", pids[0]), fmt.Sprintf("kept:dbus-test-tool:%d", pids[1])}
		slices.Sort(want)
		if !slices.Equal(apps, want) {
			t.Errorf("recovery %s: jobs %v, want %v", r.ID, apps, want)
		}
	}
	if text := s.runCLI("status"); !strings.Contains(text, fmt.Sprintf("kept: dbus-test-tool (pid %d), through 2 restarts", pids[0])) {
		t.Errorf("busmedic status does not list the kept app:\n%s", text)
	}

	// The daemon dies: the apps keep their connections; a new daemon
	// hears everything from the keeper.
	s.daemon.Process.Kill()
	<-s.exited
	for _, n := range names {
		ping(t, s.bus.Address(), n)
	}
	s.start()
	s.await("the new daemon told of both kept apps", func(st control.Status) bool {
		k := kept(st)
		return len(k) == 2 && k[pids[0]].Restarts == 2 && k[pids[1]].Restarts == 2
	})
	if k := keepers(s); len(k) != 1 {
		t.Errorf("keeper processes %v after the daemon's restart, want the one", k)
	}
}

// A rule with action keep: its app, not kept at first, dies with the bus
// and is relaunched through busmedic keep (plan shows that command); at
// the next restart it is kept, the same process.
func TestKeepRule(t *testing.T) {
	s, _ := keptSession(t, `version = 1
[[app]]
id = "echo"
names = ["org.example.Echo"]
exec = ["dbus-test-tool", "echo", "--name=org.example.Echo"]
action = "keep"
`)
	first := exec.Command("dbus-test-tool", "echo", "--name=org.example.Echo")
	first.Env = s.env
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { first.Process.Kill(); first.Wait() })
	s.start()
	s.await("the app running", func(st control.Status) bool { return app(st, "echo").Running })
	if plan := s.runCLI("plan", "echo"); !strings.Contains(plan, "command: "+busmedicBinary(t)+" keep -- dbus-test-tool echo --name=org.example.Echo") {
		t.Errorf("busmedic plan does not show the command through busmedic keep:\n%s", plan)
	}

	s.bus.Kill()
	s.bus.Start()
	st := s.await("the app relaunched and kept", func(st control.Status) bool {
		a := app(st, "echo")
		return a.Last != nil && a.Last.Outcome == control.Relaunched && len(st.Kept) == 1 && st.Kept[0].PID == a.Last.PID
	})
	pid := st.Kept[0].PID
	relaunchedOn := st.LastRecovery.ID
	if first.Wait(); first.ProcessState.Exited() && first.ProcessState.ExitCode() == 0 {
		t.Errorf("the first copy exited 0; want it gone with its bus")
	}
	ping(t, s.bus.Address(), "org.example.Echo")

	s.bus.Stop()
	s.bus.Start()
	st = s.await("the app kept through the restart", func(st control.Status) bool {
		r := st.LastRecovery
		return r != nil && r.ID != relaunchedOn && !r.Ended.IsZero() && len(st.Kept) == 1 && st.Kept[0].Restarts == 1
	})
	if jobs := st.LastRecovery.Jobs; len(jobs) != 1 || jobs[0].App != "echo" || jobs[0].Outcome != control.Kept || jobs[0].PID != pid {
		t.Errorf("recovery jobs %+v, want one: echo kept, pid %d", jobs, pid)
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Errorf("the kept app (pid %d) is gone: %v", pid, err)
	}
	ping(t, s.bus.Address(), "org.example.Echo")
}

// Only the session bus can be kept; a wrong COMMAND is said at once.
func TestKeepRefusals(t *testing.T) {
	code, _, stderr := runCLI("keep", "--bus", "system", "--", "true")
	if code != exitError || !strings.Contains(stderr, "only the session bus can be kept") {
		t.Errorf("keep --bus system: exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runCLI("keep", "--", "busmedic-no-such-program")
	if code != exitError || !strings.Contains(stderr, "busmedic-no-such-program") {
		t.Errorf("keep of a missing program: exit %d, stderr %q", code, stderr)
	}
}
