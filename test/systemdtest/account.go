package systemdtest

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Account runs commands in the container as one user, and speaks to that
// user's service manager: Machine.User is the lingering user and its user
// manager (systemctl --user), Machine.Root is root and the system manager.
type Account struct {
	m    *Machine
	user bool // the user manager rather than the system manager
	name string
	home string
	env  []string
}

// Command returns a command that runs name with arg in the container as
// this account, like exec.CommandContext: the caller sets its input and
// output, starts it and reads its exit status. It starts in the account's
// home directory, with a login's environment (for the user, with
// XDG_RUNTIME_DIR and DBUS_SESSION_BUS_ADDRESS). Cancelling ctx kills it.
func (a *Account) Command(ctx context.Context, name string, arg ...string) *exec.Cmd {
	// nsenter enters the container's namespaces through its PID 1 and
	// forks the command into its pid namespace; setpriv switches to the
	// user and makes the command die with nsenter, should nsenter be
	// killed (WaitDelay, or the test process dying), rather than run on
	// (it sets the parent-death signal last, as changing ids clears it).
	args := []string{"-t", strconv.Itoa(a.m.leader), "-a", "--wdns=" + a.home, "setpriv", "--pdeathsig=KILL"}
	if a.user {
		args = append(args, fmt.Sprintf("--reuid=%d", UID), fmt.Sprintf("--regid=%d", UID), "--init-groups")
	}
	args = append(args, "--", name)
	cmd := exec.CommandContext(ctx, "nsenter", append(args, arg...)...)
	cmd.Env = a.env
	// Cancelling kills the command, which nsenter then reaps and exits.
	// Killing nsenter instead would leave the command (and, through the
	// parent-death signal, its corpse) to the host's init, outside the
	// container: the container's systemd could not reap it and would wait
	// for it at poweroff.
	cmd.Cancel = func() error {
		kids := children(cmd.Process.Pid)
		if len(kids) == 0 {
			return cmd.Process.Kill() // not forked yet
		}
		for _, pid := range kids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		return nil
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Run runs a command in the container as this account and returns its
// output with surrounding space trimmed. It fails the test if the command
// exits with a status other than 0, or takes more than a minute.
func (a *Account) Run(args ...string) string {
	a.m.t.Helper()
	return a.run(nil, args...)
}

func (a *Account) run(stdin []byte, args ...string) string {
	a.m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandLimit)
	defer cancel()
	cmd := a.Command(ctx, args[0], args[1:]...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		a.m.t.Fatalf("systemdtest: %s as %s: %v (deadline: %v)\n%s%s", strings.Join(args, " "), a.name, err, ctx.Err(), out, stderr.Bytes())
	}
	return strings.TrimSpace(string(out))
}

// state returns the trimmed output of a command whatever its exit status,
// as systemctl is-system-running prints the state and exits 1 unless it is
// "running".
func (a *Account) state(ctx context.Context, args ...string) string {
	out, _ := a.Command(ctx, args[0], args[1:]...).Output()
	return strings.TrimSpace(string(out))
}

// WriteFile writes data to a file in the container as this account (owned
// by it), creating the directories leading to it. A relative path is from
// the account's home directory.
func (a *Account) WriteFile(path string, data []byte, perm fs.FileMode) {
	a.m.t.Helper()
	// install makes the directories and an empty file with its mode; tee
	// fills it from its standard input, a pipe of root's on the host that
	// the user could not open again as /dev/stdin.
	a.run(nil, "install", "-D", "-m", fmt.Sprintf("%04o", perm.Perm()), "/dev/null", path)
	a.run(data, "tee", "--", path)
}

// systemctl is the command line that speaks to the account's manager.
func (a *Account) systemctl(args ...string) []string {
	if a.user {
		return append([]string{"systemctl", "--user"}, args...)
	}
	return append([]string{"systemctl"}, args...)
}

// WriteUnit installs a unit file named name with the given text (in
// ~/.config/systemd/user for the user, /etc/systemd/system for root) and
// reloads the manager. It does not start the unit.
func (a *Account) WriteUnit(name, text string) {
	a.m.t.Helper()
	dir := "/etc/systemd/system/"
	if a.user {
		dir = ".config/systemd/user/"
	}
	a.WriteFile(dir+name, []byte(text), 0o644)
	a.Run(a.systemctl("daemon-reload")...)
}

// StartUnit runs argv in a new transient service named unit (systemd-run
// --unit), with the unit properties props ("Type=dbus", "BusName=…",
// "Restart=on-failure"), and returns once the manager has started it. The
// unit stays loaded after it ends, so that its state can be read.
func (a *Account) StartUnit(unit string, props []string, argv ...string) {
	a.m.t.Helper()
	args := []string{"systemd-run", "--quiet", "--unit=" + unit}
	if a.user {
		args = append(args, "--user")
	}
	for _, p := range props {
		args = append(args, "--property="+p)
	}
	a.Run(append(append(args, "--"), argv...)...)
}

// UnitState is what the manager says of a unit.
type UnitState struct {
	// ID is the unit's name; for an alias, the name of the unit it stands
	// for (dbus.service run by dbus-broker is dbus-broker.service).
	ID string
	// LoadState is "loaded", "not-found", ...
	LoadState string
	// ActiveState is "active", "activating", "deactivating", "inactive"
	// or "failed"; SubState says more ("running", "exited", "dead", ...).
	ActiveState, SubState string
	// Result is how the unit last ended: "success", "exit-code",
	// "signal", ...
	Result string
	// MainPID is the main process in the container's pid namespace, or 0.
	MainPID int
	// NRestarts counts the restarts by Restart= since the unit was last
	// started by hand.
	NRestarts int
}

// Running reports whether the unit is active with its process running.
func (s UnitState) Running() bool { return s.ActiveState == "active" && s.SubState == "running" }

// Stopped reports whether the unit is inactive or failed.
func (s UnitState) Stopped() bool { return s.ActiveState == "inactive" || s.ActiveState == "failed" }

func (s UnitState) String() string {
	return fmt.Sprintf("%s %s %s/%s result %s pid %d restarts %d", s.ID, s.LoadState, s.ActiveState, s.SubState, s.Result, s.MainPID, s.NRestarts)
}

// Unit returns the unit's state from the account's manager.
func (a *Account) Unit(name string) UnitState {
	a.m.t.Helper()
	out := a.Run(a.systemctl("show", "--property=Id,LoadState,ActiveState,SubState,Result,MainPID,NRestarts", "--", name)...)
	var s UnitState
	for line := range strings.SplitSeq(out, "\n") {
		k, v, _ := strings.Cut(line, "=")
		switch k {
		case "Id":
			s.ID = v
		case "LoadState":
			s.LoadState = v
		case "ActiveState":
			s.ActiveState = v
		case "SubState":
			s.SubState = v
		case "Result":
			s.Result = v
		case "MainPID":
			s.MainPID, _ = strconv.Atoi(v)
		case "NRestarts":
			s.NRestarts, _ = strconv.Atoi(v)
		}
	}
	return s
}

// WaitUnit waits until cond holds for the unit's state (such as
// UnitState.Running) and returns that state; it fails the test with the
// last state and the unit's journal if it does not within timeout.
func (a *Account) WaitUnit(name string, timeout time.Duration, cond func(UnitState) bool) UnitState {
	a.m.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := a.Unit(name)
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			a.m.t.Fatalf("systemdtest: unit %s: not as wanted within %s; last: %v\n%s", name, timeout, s, formatEntries(a.Journal(name), 30))
		}
		time.Sleep(poll) // the manager's state gives no event to wait on here
	}
}
