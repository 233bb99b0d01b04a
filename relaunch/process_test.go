package relaunch

import (
	"busmedic/watcher/bustest"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"busmedic/relaunch/control"
)

// startSleeper starts a process of ours that runs until killed.
func startSleeper(t *testing.T) (*exec.Cmd, <-chan struct{}) {
	t.Helper()
	cmd := exec.Command("/bin/sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	return cmd, done
}

// A pid whose start time is not the one recorded (the pid was reused by
// another program) is never signalled.
func TestStopRefusesAnotherProcess(t *testing.T) {
	cmd, done := startSleeper(t)
	pid := cmd.Process.Pid
	start, _, err := procStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		start uint64
		want  error
	}{
		{"reused pid", start + 1, errNotSame},
		{"start time unknown", 0, errUnverifiable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := stopProcess(context.Background(), pid, tc.start, time.Second)
			if !errors.Is(err, tc.want) {
				t.Fatalf("stopProcess = %v, want %v", err, tc.want)
			}
			if err := signalProcess(pid, tc.start, 9); !errors.Is(err, tc.want) {
				t.Fatalf("signalProcess = %v, want %v", err, tc.want)
			}
			select {
			case <-done:
				t.Fatal("the process was signalled")
			default:
			}
		})
	}
	t.Run("same process", func(t *testing.T) {
		if err := stopProcess(context.Background(), pid, start, 5*time.Second); err != nil {
			t.Fatalf("stopProcess = %v", err)
		}
		<-done
		if err := stopProcess(context.Background(), pid, start, time.Second); !errors.Is(err, errGone) {
			t.Fatalf("stopProcess after exit = %v, want errGone", err)
		}
	})
}

// A process that ignores SIGTERM is killed after the stop timeout.
func TestStopEscalatesToKill(t *testing.T) {
	cmd := exec.Command("/bin/sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	buf := make([]byte, 6)
	if _, err := out.Read(buf); err != nil {
		t.Fatal(err)
	}
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	start, _, _ := procStat(cmd.Process.Pid)
	if err := stopProcess(context.Background(), cmd.Process.Pid, start, 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	<-done
	if !strings.Contains(cmd.ProcessState.String(), "killed") {
		t.Errorf("state %s, want killed", cmd.ProcessState)
	}
}

func TestCheckExecutable(t *testing.T) {
	dir := t.TempDir()
	prog := filepath.Join(dir, "prog")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := checkExecutable(prog); err != nil {
		t.Errorf("0755 file of ours: %v", err)
	}
	os.Chmod(prog, 0o775)
	if err := checkExecutable(prog); !errors.Is(err, errUnsafeExecutable) {
		t.Errorf("group-writable: %v, want errUnsafeExecutable", err)
	}
	if _, err := lookPath("no-such-program-busmedic", nil); err == nil || err.Error() != "exec not found: no-such-program-busmedic" {
		t.Errorf("lookPath: %v", err)
	}
}

// A started app runs in its own session with stdin from /dev/null and its
// output in its log, and is reaped when it exits.
func TestStartProcess(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "logs", "app.log")
	c, err := startProcess(startSpec{app: "app", argv: []string{"/bin/sh", "-c", "echo out; echo err >&2; cat; ps -o sid= -p $$; exit 4"},
		env: []string{"PATH=/usr/bin:/bin"}, log: log})
	if err != nil {
		t.Fatal(err)
	}
	<-c.exited
	if got := c.exitReason(); got != "exited with 4" {
		t.Errorf("exit reason %q", got)
	}
	b, _ := os.ReadFile(log)
	if !strings.Contains(string(b), "out\nerr\n") {
		t.Errorf("log: %q", b)
	}
	if _, state, err := procStat(c.pid); err == nil && state == 'Z' {
		t.Error("zombie left behind")
	}
}

// A log over the cap is moved aside when the app starts again.
func TestLogCapped(t *testing.T) {
	log := filepath.Join(t.TempDir(), "app.log")
	if err := os.WriteFile(log, make([]byte, logLimit+1), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := startProcess(startSpec{app: "app", argv: []string{"/bin/true"}, log: log})
	if err != nil {
		t.Fatal(err)
	}
	<-c.exited
	old, err1 := os.Stat(log + ".1")
	cur, err2 := os.Stat(log)
	if err1 != nil || err2 != nil || old.Size() != logLimit+1 || cur.Size() > 1024 {
		t.Errorf("after start: %v %v; .1 %d bytes, log %d bytes", err1, err2, old.Size(), cur.Size())
	}
}

// A chatty app that busmedic started keeps its log under the limit while it
// runs: at a bus event the log moves to .1 and is emptied, and the app,
// which appends, goes on writing at its start.
func TestLogCappedWhileRunning(t *testing.T) {
	const limit = 4096
	h := newHarness(t, `
[[app]]
id = "chatty"
names = ["org.example.Chatty"]
exec = ["TESTAPP", "-name", "org.example.Chatty", "-mode", "deaf", "-chatter", "10000"]
grace = "100ms"
`, func(c *Config, _ *bustest.Bus) { c.logLimit, c.logEvery = limit, time.Nanosecond })
	h.bus.StartApp("-name", "org.example.Chatty", "-mode", "exit")
	h.waitOwner("org.example.Chatty", 0)
	j := jobOf(t, h.crash(), "chatty")
	if j.Outcome != control.Relaunched {
		t.Fatalf("chatty: %s (%s), want relaunched", j.Outcome, j.Reason)
	}
	// The app wrote 10 kB at its start; the bus events that follow (its
	// own joining the bus) cap it.
	log := h.eng.logPath("chatty")
	h.until("the log capped", func() bool {
		old, err := os.ReadFile(log + ".1")
		st, err2 := os.Stat(log)
		return err == nil && err2 == nil && len(old) == limit &&
			strings.Count(string(old), "worth a warning") > limit/60 && st.Size() <= limit
	})
	if pid := h.owner("org.example.Chatty"); pid != j.PID {
		t.Errorf("org.example.Chatty owned by pid %d, want the relaunched app %d still running", pid, j.PID)
	}
}

// capLog keeps what the log held in .1, and a writer that appends, as the
// apps' stdout does, goes on at the start of the emptied log.
func TestCapLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	app, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer app.Close()
	app.WriteString(strings.Repeat("old line\n", 100))
	if size, err := capLog(path, 1000); err != nil || size != 0 {
		t.Fatalf("capLog under the limit = %d, %v; want nothing done", size, err)
	}
	app.WriteString(strings.Repeat("old line\n", 100))
	if size, err := capLog(path, 1000); err != nil || size != 1800 {
		t.Fatalf("capLog = %d, %v; want 1800", size, err)
	}
	app.WriteString("new line\n")
	if b, _ := os.ReadFile(path); string(b) != "new line\n" {
		t.Errorf("log after capping = %q, want only the new line", b)
	}
	if b, _ := os.ReadFile(path + ".1"); string(b) != strings.Repeat("old line\n", 200)[800:] {
		t.Errorf("%s.1 = %d bytes, want the last 1000 of the old lines", path, len(b))
	}
	// A symlink in the state directory is not followed.
	if err := os.Symlink(path+".1", path+".link"); err != nil {
		t.Fatal(err)
	}
	if _, err := capLog(path+".link", 10); err == nil {
		t.Error("capLog followed a symlink")
	}
}

// fdTarget returns what file descriptor fd of process pid is open on.
func fdTarget(t *testing.T, pid, fd int) string {
	t.Helper()
	s, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "fd", strconv.Itoa(fd)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A log that cannot be written (here the state directory is a file) does
// not stop the start: the app runs with its output to /dev/null, and the
// child says why, for the job's reason.
func TestStartProcessLogUnwritable(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	if err := os.WriteFile(state, []byte("a file, not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := startProcess(startSpec{app: "app", argv: []string{"/bin/sleep", "600"}, log: filepath.Join(state, "logs", "app.log")})
	if err != nil {
		t.Fatalf("startProcess = %v, want the app started without its log", err)
	}
	t.Cleanup(func() { syscall.Kill(c.pid, syscall.SIGKILL); <-c.exited })
	if want := "output to /dev/null: log directory: mkdir " + state + ": not a directory"; c.logWarning != want {
		t.Errorf("logWarning = %q, want %q", c.logWarning, want)
	}
	for _, fd := range []int{0, 1, 2} {
		if got := fdTarget(t, c.pid, fd); got != "/dev/null" {
			t.Errorf("fd %d of the app is %s, want /dev/null", fd, got)
		}
	}
	if b, _ := os.ReadFile(state); string(b) != "a file, not a directory" {
		t.Errorf("the file in the way was changed: %q", b)
	}
	// The job's reason gets the warning; the outcome stays.
	r := result{outcome: control.Relaunched}.withLogWarning(c)
	if r.outcome != control.Relaunched || r.reason != c.logWarning {
		t.Errorf("withLogWarning = %+v", r)
	}
	if r := (result{outcome: control.Failed, reason: "exited with 1"}).withLogWarning(c); r.reason != "exited with 1; "+c.logWarning {
		t.Errorf("withLogWarning after a reason = %q", r.reason)
	}
	ok := &child{}
	if r := (result{outcome: control.Relaunched}).withLogWarning(ok).withLogWarning(nil); r.reason != "" {
		t.Errorf("withLogWarning without a warning = %q", r.reason)
	}
}

// Scripts are checked like programs: the one a shell command line names
// (shell = true), the one given to an interpreter, and the directories
// above them. Nothing unsafe is started; the same files made safe are.
func TestStartRefusesUnsafeCommands(t *testing.T) {
	root := t.TempDir() // under /tmp: sticky, root's; that alone is fine
	marker := filepath.Join(root, "ran")
	script := func(path string, perm os.FileMode) string {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("#!/bin/sh\necho ran >>"+marker+"\n"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, perm); err != nil {
			t.Fatal(err)
		}
		return path
	}
	ww := script(filepath.Join(root, "bin", "ww.sh"), 0o777)
	open := filepath.Join(root, "open")
	inOpen := script(filepath.Join(open, "run.sh"), 0o755)
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(root, "bin")
	env := []string{"PATH=" + bin + ":/usr/bin:/bin"}
	for _, tc := range []struct {
		name string
		argv []string
		dir  string
		bad  string // the file the error must name
	}{
		{"shell line naming a script", []string{"/bin/sh", "-c", ww + " --now"}, "", ww},
		{"shell line running a script from PATH", []string{"/bin/sh", "-c", "cd / && exec ww.sh >/dev/null 2>&1"}, "", ww},
		{"shell line sourcing a script", []string{"/bin/sh", "-c", ". ./ww.sh"}, bin, ww},
		{"interpreter with a script", []string{"sh", "-e", ww}, "", ww},
		{"interpreter with a relative script", []string{"/bin/sh", "ww.sh"}, bin, ww},
		{"script under a directory others may write", []string{"/bin/sh", inOpen}, "", open},
		{"program under a directory others may write", []string{inOpen}, "", open},
		{"program writable by others", []string{ww}, "", ww},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := startProcess(startSpec{app: "app", argv: tc.argv, dir: tc.dir, env: env})
			if err == nil {
				<-c.exited
				t.Fatal("started")
			}
			if !errors.Is(err, errUnsafeExecutable) || !strings.Contains(err.Error(), "fix with: chmod go-w "+tc.bad) {
				t.Errorf("startProcess = %v, want errUnsafeExecutable naming %s", err, tc.bad)
			}
		})
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("an unsafe script ran")
	}
	// Made safe, the same commands run.
	if err := os.Chmod(ww, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, argv := range [][]string{{"/bin/sh", "-c", ww}, {"sh", ww}, {"/bin/sh", inOpen}} {
		c, err := startProcess(startSpec{app: "app", argv: argv, env: env})
		if err != nil {
			t.Fatalf("%q: %v", argv, err)
		}
		<-c.exited
		if c.state == nil || !c.state.Success() {
			t.Errorf("%q: %s", argv, c.exitReason())
		}
	}
	if b, _ := os.ReadFile(marker); string(b) != "ran\nran\nran\n" {
		t.Errorf("the safe scripts wrote %q, want three lines", b)
	}
}

// The rule of the issue: a world-writable script run with shell = true is
// refused at relaunch (as it was without the shell), and so is a hook's
// script; once fixed, both run.
func TestShellRuleWithUnsafeScript(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	app := filepath.Join(dir, "start-app.sh")
	hook := filepath.Join(dir, "hook.sh")
	testapp := bustest.TestApp(t)
	for path, name := range map[string]string{app: "org.example.ShellApp", hook: "org.example.HookedApp"} {
		body := "#!/bin/sh\necho " + name + " >>" + marker + "\nexec " + testapp + " -name " + name + " -mode exit\n"
		if err := os.WriteFile(path, []byte(body), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	h := newHarness(t, `
[[app]]
id = "shellapp"
names = ["org.example.ShellApp"]
shell = true
exec = ["`+app+` >/dev/null 2>&1"]
grace = "100ms"

[[app]]
id = "hooked"
names = ["org.example.HookedApp"]
action = "hook"
hook = ["/bin/sh", "-c", "`+hook+` &"]
grace = "100ms"
`)
	h.bus.StartApp("-name", "org.example.ShellApp", "-mode", "exit")
	h.bus.StartApp("-name", "org.example.HookedApp", "-mode", "exit")
	h.waitOwner("org.example.ShellApp", 0)
	h.waitOwner("org.example.HookedApp", 0)
	rec := h.crash()
	for app, script := range map[string]string{"shellapp": app, "hooked": hook} {
		j := jobOf(t, rec, app)
		if j.Outcome != control.Failed || !strings.Contains(j.Reason, "unsafe executable") || !strings.Contains(j.Reason, "fix with: chmod go-w "+script) {
			t.Errorf("%s: %s %q, want failed: unsafe executable", app, j.Outcome, j.Reason)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a world-writable script ran")
	}

	for _, p := range []string{app, hook} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h.bus.StartApp("-name", "org.example.ShellApp", "-mode", "exit")
	h.bus.StartApp("-name", "org.example.HookedApp", "-mode", "exit")
	h.waitOwner("org.example.ShellApp", 0)
	h.waitOwner("org.example.HookedApp", 0)
	rec = h.crash()
	if j := jobOf(t, rec, "shellapp"); j.Outcome != control.Relaunched {
		t.Errorf("shellapp once safe: %s %q", j.Outcome, j.Reason)
	}
	if j := jobOf(t, rec, "hooked"); j.Outcome != control.Hooked {
		t.Errorf("hooked once safe: %s %q", j.Outcome, j.Reason)
	}
	pid := h.waitOwner("org.example.HookedApp", 0)
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
}
