package relaunch

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"busmedic/appdb"
)

// Errors of the process checks, tested with errors.Is.
var (
	// errGone: the process has exited.
	errGone = errors.New("relaunch: process has exited")
	// errNotSame: the pid now belongs to another process (pid reuse).
	errNotSame = errors.New("relaunch: pid belongs to another process now")
	// errNotOurs: the process runs as another user; busmedic never touches it.
	errNotOurs = errors.New("relaunch: process belongs to another user")
	// errUnverifiable: the start time of the process was not recorded, so
	// that it cannot be told from a process that reused its pid.
	errUnverifiable = errors.New("relaunch: process identity unknown")
	// errUnsafeExecutable: the program could be replaced by someone else.
	errUnsafeExecutable = errors.New("relaunch: unsafe executable")
)

// procStat reads the start time (field 22) and state (field 3) of
// /proc/PID/stat. The command name (field 2) may hold spaces and
// parentheses, so fields are counted from the last ')'.
func procStat(pid int) (start uint64, state byte, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			return 0, 0, errGone
		}
		return 0, 0, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("stat of pid %d: malformed", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("stat of pid %d: malformed", pid)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("stat of pid %d: start time: %w", pid, err)
	}
	return start, f[0][0], nil
}

// alive reports whether the process pid with the given start time still
// runs (a zombie does not count).
func alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	st, state, err := procStat(pid)
	return err == nil && state != 'Z' && (start == 0 || st == start)
}

// process is a verified handle on one process: the pid still had the
// expected start time, and belongs to us, after the handle was opened.
// With a pidfd, signals go to that very process even if it exits and its pid
// is reused meanwhile; without (kernels before 5.3), the window between the
// check and the signal is a few microseconds.
type process struct {
	pid int
	fd  int // pidfd, or -1
}

// openProcess returns a handle on the process pid if it is still the one
// that started at start (clock ticks since boot) and belongs to this user.
// The pidfd is opened before the check, so that the check applies to the
// process the pidfd refers to.
func openProcess(pid int, start uint64) (*process, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("pid %d: %w", pid, errGone)
	}
	if start == 0 {
		return nil, fmt.Errorf("pid %d: start time not recorded: %w", pid, errUnverifiable)
	}
	fd, err := unix.PidfdOpen(pid, 0)
	switch {
	case errors.Is(err, unix.ESRCH):
		return nil, fmt.Errorf("pid %d: %w", pid, errGone)
	case err != nil:
		fd = -1 // ENOSYS on old kernels, or seccomp: fall back to kill(2)
	}
	p := &process{pid: pid, fd: fd}
	st, state, err := procStat(pid)
	if err != nil {
		p.close()
		return nil, fmt.Errorf("pid %d: %w", pid, err)
	}
	if st != start {
		p.close()
		return nil, fmt.Errorf("pid %d started at tick %d, the process seen on the bus at %d: %w", pid, st, start, errNotSame)
	}
	if state == 'Z' {
		p.close()
		return nil, fmt.Errorf("pid %d: %w", pid, errGone)
	}
	var sys unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(pid), &sys); err != nil {
		p.close()
		return nil, fmt.Errorf("pid %d: %w", pid, errGone)
	}
	// /proc/PID is owned by the process's effective uid.
	if uid := os.Getuid(); int(sys.Uid) != uid {
		p.close()
		return nil, fmt.Errorf("pid %d runs as uid %d, not %d: %w", pid, sys.Uid, uid, errNotOurs)
	}
	return p, nil
}

func (p *process) close() {
	if p.fd >= 0 {
		unix.Close(p.fd)
		p.fd = -1
	}
}

func (p *process) signal(sig unix.Signal) error {
	var err error
	if p.fd >= 0 {
		err = unix.PidfdSendSignal(p.fd, sig, nil, 0)
	} else {
		err = unix.Kill(p.pid, sig)
	}
	if errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("pid %d: %w", p.pid, errGone)
	}
	if err != nil {
		return fmt.Errorf("send %s to pid %d: %w", unix.SignalName(sig), p.pid, err)
	}
	return nil
}

// wait waits up to d for the process to exit and reports whether it did.
// A pidfd becomes readable when the process exits (before it is reaped);
// without one, /proc is looked at every 10ms.
func (p *process) wait(ctx context.Context, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			return false
		}
		step := min(left, 50*time.Millisecond)
		if p.fd >= 0 {
			fds := []unix.PollFd{{Fd: int32(p.fd), Events: unix.POLLIN}}
			n, err := unix.Poll(fds, int(step.Milliseconds())+1)
			if err == nil && n > 0 {
				return true
			}
			if err != nil && !errors.Is(err, unix.EINTR) {
				p.close() // fall back to /proc below
			}
			continue
		}
		if _, state, err := procStat(p.pid); err != nil || state == 'Z' {
			return true
		}
		t := time.NewTimer(min(step, 10*time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// stopProcess ends the process pid (started at start): SIGTERM, then SIGKILL
// after timeout. It refuses, with errNotSame, errNotOurs or errUnverifiable,
// to signal a process it cannot prove is the one seen; errGone means there
// was nothing to stop.
func stopProcess(ctx context.Context, pid int, start uint64, timeout time.Duration) error {
	p, err := openProcess(pid, start)
	if err != nil {
		return err
	}
	defer p.close()
	if err := p.signal(unix.SIGTERM); err != nil {
		return err
	}
	if p.wait(ctx, timeout) {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("stop pid %d: %w", pid, context.Cause(ctx))
	}
	if err := p.signal(unix.SIGKILL); err != nil {
		if errors.Is(err, errGone) {
			return nil
		}
		return err
	}
	if !p.wait(ctx, 5*time.Second) {
		return fmt.Errorf("pid %d still running 5s after SIGKILL", pid)
	}
	return nil
}

// signalProcess sends sig to the process after the same identity checks as
// stopProcess.
func signalProcess(pid int, start uint64, sig unix.Signal) error {
	p, err := openProcess(pid, start)
	if err != nil {
		return err
	}
	defer p.close()
	return p.signal(sig)
}

// checkExecutable refuses a program that someone other than this user or
// root could replace: see checkSafe. The rules file gets the same check in
// appdb.
func checkExecutable(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("exec not found: %s", path)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", errUnsafeExecutable, path)
	}
	return checkSafe(path, "")
}

// checkSafe refuses, with errUnsafeExecutable, a file that someone other
// than this user or root could change: one writable by group or others or
// owned by another user, or in such a directory (a sticky one, like /tmp,
// is fine), or reached through a symlink in one (appdb.CheckPath). role,
// if not "", says what the file is to the command.
func checkSafe(path, role string) error {
	err := appdb.CheckPath(path)
	if err == nil {
		return nil
	}
	var ue *appdb.UnsafeError
	if !errors.As(err, &ue) {
		return fmt.Errorf("check %s: %w", path, err)
	}
	if role != "" {
		return fmt.Errorf("%w: %s: %s", errUnsafeExecutable, role, ue)
	}
	return fmt.Errorf("%w: %s", errUnsafeExecutable, ue)
}

// checkCommand applies checkSafe to every file that running argv in dir
// executes or hands to an interpreter (appdb.CommandFiles): the scripts
// of python3 /path/x.py or sh x.sh, and with sh -c (a rule's shell =
// true) the programs and scripts the command line names. Files that are
// not found are left to the start to report.
func checkCommand(argv []string, dir string, env []string) error {
	for _, f := range appdb.CommandFiles(argv, dir, env) {
		if err := checkSafe(f.Path, f.Role()); errors.Is(err, errUnsafeExecutable) {
			return err
		}
	}
	return nil
}

// lookPath finds prog in the PATH of env (the environment the program will
// get), or in ours.
func lookPath(prog string, env []string) (string, error) {
	if strings.Contains(prog, "/") {
		if !filepath.IsAbs(prog) {
			return "", fmt.Errorf("exec not found: %s (a relative path)", prog)
		}
		if _, err := os.Stat(prog); err != nil {
			return "", fmt.Errorf("exec not found: %s", prog)
		}
		return prog, nil
	}
	path := os.Getenv("PATH")
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for dir := range strings.SplitSeq(path, ":") {
		if dir == "" || !filepath.IsAbs(dir) {
			continue // never the current directory
		}
		p := filepath.Join(dir, prog)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec not found: %s", prog)
}

// logLimit is the size above which an app's log is moved to .1: when the
// app is started again, and while it runs (see capLogs).
const logLimit = 1 << 20

// child is a process the engine started. Its reaper goroutine lives exactly
// as long as the process: it waits for it so that no zombie remains, then
// closes exited.
type child struct {
	app    string
	pid    int
	start  uint64
	exited chan struct{}
	state  *os.ProcessState // set before exited is closed
	// stopping is set when busmedic itself ends the child (a relaunch):
	// its exit is no crash.
	stopping atomic.Bool
	// logWarning says why the output goes to /dev/null instead of the
	// log ("" when it goes to the log), for the job's reason.
	logWarning string
}

// exitReason describes how a child ended, for people.
func (c *child) exitReason() string {
	<-c.exited
	st := c.state
	if st == nil {
		return "exited"
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by " + unix.SignalName(ws.Signal())
	}
	return fmt.Sprintf("exited with %d", st.ExitCode())
}

// startSpec is what to start.
type startSpec struct {
	app  string
	argv []string // argv[0] is looked up in PATH when it has no '/'
	dir  string
	env  []string
	log  string // file for stdout and stderr; "" means /dev/null
	// logLimit is the size over which log moves to .1; 0 means logLimit.
	logLimit int64
	// settle, if set, is called with the pid once the program runs (it
	// has exec'd), before anything reaps it: until settle returns the pid
	// is the child's, even if it has exited already (a zombie), so that
	// it can be handed to someone else (the user manager, for a scope)
	// without the risk of naming a process that reused it.
	settle func(pid int)
}

// startProcess starts a program detached from us: in a new session (so that
// it does not get our terminal's signals and outlives us), stdin from
// /dev/null, stdout and stderr appended to its log file. The log is a plain
// file rather than a pipe we copy from, so that the app keeps running and
// logging when busmedic exits; a log over its limit moves to .1 at the
// start, and the engine caps it while the app runs (capLogs).
//
// The program, and every script or program its command runs (checkCommand),
// must be safe (checkSafe). The log is bookkeeping: when it cannot be
// written (the state directory is a file, or unwritable, or the disk is
// full), the app starts all the same with its output to /dev/null, and
// child.logWarning says why.
func startProcess(s startSpec) (*child, error) {
	if len(s.argv) == 0 || s.argv[0] == "" {
		return nil, errors.New("no command to start")
	}
	path, err := lookPath(s.argv[0], s.env)
	if err != nil {
		return nil, err
	}
	if err := checkExecutable(path); err != nil {
		return nil, err
	}
	dir := s.dir
	if dir != "" {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			dir = ""
		}
	}
	if dir == "" {
		dir, _ = os.UserHomeDir()
	}
	if err := checkCommand(append([]string{path}, s.argv[1:]...), dir, s.env); err != nil {
		return nil, err
	}
	var out *os.File
	var logWarning string
	if s.log != "" {
		out, err = openLog(s)
		if err != nil {
			logWarning = "output to /dev/null: " + err.Error()
		} else {
			defer out.Close() // the child has its own copy
		}
	}
	cmd := &exec.Cmd{
		Path: path,
		Args: s.argv,
		Env:  s.env,
		Dir:  dir,
		// Stdin nil, and Stdout and Stderr nil, are /dev/null.
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if out != nil {
		cmd.Stdout, cmd.Stderr = out, out
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", path, err)
	}
	c := &child{app: s.app, pid: cmd.Process.Pid, exited: make(chan struct{}), logWarning: logWarning}
	// Only we reap the child, so its /proc entry (and start time, which
	// exec does not change) is there until the Wait below returns.
	c.start, _, _ = procStat(c.pid)
	if s.settle != nil {
		s.settle(c.pid)
	}
	go func() {
		_ = cmd.Wait()
		c.state = cmd.ProcessState
		close(c.exited)
	}()
	return c, nil
}

// openLog opens the log of s for appending, after moving it to .1 if it is
// over its limit, and writes a line that tells the start. That line also
// finds a full disk before the app does.
func openLog(s startSpec) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(s.log), 0o700); err != nil {
		return nil, fmt.Errorf("log directory: %w", err)
	}
	if st, err := os.Stat(s.log); err == nil && st.Size() > cmp.Or(s.logLimit, logLimit) {
		_ = os.Rename(s.log, s.log+".1")
	}
	out, err := os.OpenFile(s.log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	if _, err := fmt.Fprintf(out, "--- busmedic: starting %q at %s\n", s.argv, time.Now().Format(time.RFC3339)); err != nil {
		out.Close()
		return nil, fmt.Errorf("write log: %w", err)
	}
	return out, nil
}

func currentUID() int { return os.Getuid() }
