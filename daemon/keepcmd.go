package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/godbus/dbus/v5"

	"busmedic/journallog"
	"busmedic/keep"
	"busmedic/relaunch/control"
	"busmedic/usermanager"
)

// The keeper's process and the "busmedic keep" that starts it speak
// through a command line of their own: both ends of it are here, so that
// the words one writes are the words the other reads.

// KeeperCommand is the hidden command word of the keeper's process:
// "busmedic keeper [--bus B] [--socket S] [--control C] [--ready-fd N]
// [--detach] [--own-scope] [-v]". It is no command for people: not in the help, the
// completions or the man page.
const KeeperCommand = "keeper"

// ErrKeeperUsage is a keeper command line that is wrong: a bug in
// whoever wrote it, since only Keep does.
var ErrKeeperUsage = errors.New("wrong keeper command line")

// KeepEnv makes sure a keeper serves the session bus, starting one with
// self (busmedic's executable) if none holds the lock, and returns env
// with DBUS_SESSION_BUS_ADDRESS set to the keeper's socket: the
// environment of a process that is to be kept.
func KeepEnv(ctx context.Context, self string, env []string) ([]string, error) {
	socket := control.KeepPath("session")
	err := EnsureKeeper(ctx, socket, func() *exec.Cmd {
		return exec.Command(self, KeeperCommand, "--bus", "session", "--ready-fd", "3", "--detach")
	})
	if err != nil {
		return nil, fmt.Errorf("%w (see %s)", err, strings.TrimSuffix(socket, ".sock")+".log")
	}
	const key = "DBUS_SESSION_BUS_ADDRESS"
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return append(out, key+"="+keepAddress(socket)), nil
}

// keepAddress is the D-Bus address of the keeper's socket.
func keepAddress(socket string) string {
	return "unix:path=" + dbus.EscapeBusAddressValue(socket)
}

// RunKeeperCommand is "busmedic keeper ARGS": the keeper of a bus (keep.New
// under RunKeeper) until ctx ends or the session does. With --detach it
// only starts the keeper in a session of its own and returns, so that the
// keeper is no child of the app "busmedic keep" becomes. Another keeper
// serving the socket is no error. stderr is the keeper's log.
func RunKeeperCommand(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet(KeeperCommand, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // the error says what is wrong
	bus := fs.String("bus", "session", "")
	socket := fs.String("socket", "", "")
	ctl := fs.String("control", control.DefaultPath(), "")
	readyFD := fs.Int("ready-fd", -1, "")
	detach := fs.Bool("detach", false, "")
	ownScope := fs.Bool("own-scope", false, "")
	verbose := fs.Bool("v", false, "")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		return fmt.Errorf("%w: %q", ErrKeeperUsage, args)
	}
	if *socket == "" {
		*socket = control.KeepPath(*bus)
	}
	var ready *os.File
	if *readyFD >= 0 {
		ready = os.NewFile(uintptr(*readyFD), "ready")
	}
	if *detach {
		return detachKeeper(args, ready, *socket, stderr)
	}
	log := keeperLogger(stderr, *verbose)
	if *ownScope {
		keeperScope(ctx, log)
	}
	err := RunKeeper(ctx, KeeperConfig{
		Bus: *bus, Socket: *socket, Control: *ctl, Ready: ready, Log: log,
		New: func(address func() (string, error), report func(control.KeptReport)) KeeperCore {
			return keep.New(keep.Config{Bus: *bus, Address: address, Logger: log, Report: report})
		},
	})
	switch {
	case errors.Is(err, control.ErrRunning):
		return nil // another keeper serves the socket
	case err != nil:
		log.Error("keeper failed", "err", err)
	}
	return err
}

// detachKeeper starts the keeper of args (without --detach) in a session
// of its own, its stderr the journal if ours is, else its log file.
func detachKeeper(args []string, ready *os.File, socket string, stderr io.Writer) error {
	err := func() error {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		// The keeper proper, in a scope of its own (keeperScope).
		rest := []string{"--own-scope"}
		for _, a := range args {
			if a != "--detach" && a != "-detach" {
				rest = append(rest, a)
			}
		}
		logFile, ok := stderr.(*os.File)
		if !ok || !journallog.IsJournal(logFile) {
			if logFile, err = KeeperLog(socket); err != nil {
				return err
			}
			defer logFile.Close()
		}
		return SpawnKeeper(exec.Command(self, append([]string{KeeperCommand}, rest...)...), ready, logFile)
	}()
	if err != nil && ready != nil {
		// "busmedic keep" waits on the pipe for this word.
		fmt.Fprintln(ready, "error: "+err.Error())
	}
	return err
}

// keeperLogger is the keeper's log: to the journal when its stderr is
// its log file and a journal runs (the file is the fallback), else as any
// of busmedic's long-running commands (journallog.NewLogger).
func keeperLogger(stderr io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	if f, ok := stderr.(*os.File); ok && !journallog.IsJournal(f) && journal.Enabled() {
		return slog.New(journallog.NewJournalHandler(stderr, "busmedic", &slog.HandlerOptions{Level: level}))
	}
	return journallog.NewLogger(stderr, level)
}

// keeperScopeWait bounds the keeper's wait for its scope at start.
const keeperScopeWait = time.Second

// keeperScope moves the keeper into a scope of its own in app.slice,
// app-busmedic-keeper-<pid>.scope, when a systemd user manager runs. A
// keeper that "busmedic keep" started is in the cgroup of whatever ran
// that: the first kept app's scope, a terminal's, busmedic.service. It
// must not stay there, since stopping that unit or scope would take every
// kept app's connection with it. Without a manager, or if it refuses, the
// keeper stays where it is and says so.
func keeperScope(ctx context.Context, log *slog.Logger) {
	socket := usermanager.Socket(os.Getenv)
	if !usermanager.Running(socket) {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, keeperScopeWait)
	defer cancel()
	err := func() error {
		conn, err := usermanager.Dial(ctx, socket)
		if err != nil {
			return err
		}
		defer conn.Close()
		pid := os.Getpid()
		name := usermanager.ScopeName(usermanager.Launcher, "keeper", pid)
		res, err := usermanager.StartScope(ctx, conn, name, pid, "busmedic's keeper: the bus connections of the apps busmedic keep runs")
		if err == nil && res != "done" {
			err = fmt.Errorf("scope %s: job %s", name, res)
		}
		return err
	}()
	if err != nil {
		log.Warn("keeper stays in the cgroup it was started in", "err", err)
	}
}
