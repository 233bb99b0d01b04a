package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/journal"

	"busmedic/cmd/busmedic/internal/cli"
	"busmedic/daemon"
	"busmedic/journallog"
	"busmedic/keep"
	"busmedic/relaunch/control"
)

// keepFlags are the flags of "busmedic keep".
func keepFlags(fs *flag.FlagSet) {
	fs.String("bus", "session", "the bus to keep the app's connections to (session only)")
}

// runKeep is "busmedic keep -- COMMAND [ARGS...]": it makes sure the
// keeper runs, then becomes COMMAND (the same pid), with the keeper's
// socket as its session bus.
func runKeep(ctx context.Context, in *cli.Call) int {
	switch bus := in.Str("bus"); bus {
	case "session":
	case "system":
		return in.Failf("only the session bus can be kept: the system bus's policy decides by the connecting process's uid and pid, which the keeper would hide (the bus would see the keeper)")
	default:
		return in.UsageError("no bus %q (want session)", bus)
	}
	path, err := exec.LookPath(in.Args[0])
	if err != nil {
		return in.Failf("%v", err)
	}
	self, err := os.Executable()
	if err != nil {
		return in.Failf("%v", err)
	}
	socket := control.KeepPath("session")
	err = daemon.EnsureKeeper(ctx, socket, func() *exec.Cmd {
		return exec.Command(self, keeperCommand, "--bus", "session", "--ready-fd", "3", "--detach")
	})
	if err != nil {
		return in.Failf("%v (see %s)", err, strings.TrimSuffix(socket, ".sock")+".log")
	}
	env := append(withoutEnv(os.Environ(), "DBUS_SESSION_BUS_ADDRESS"), "DBUS_SESSION_BUS_ADDRESS="+keepAddress(socket))
	// The app takes this process's place: whoever started "busmedic keep"
	// (the engine, a desktop file, a shell) knows the app by this pid.
	err = syscall.Exec(path, in.Args, env)
	return in.Failf("%s: %v", in.Args[0], err)
}

// keepAddress is the D-Bus address of the keeper's socket, its path
// escaped as the address syntax wants.
func keepAddress(socket string) string {
	var b strings.Builder
	for _, c := range []byte(socket) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', strings.IndexByte("-_/.\\*", c) >= 0:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02x", c)
		}
	}
	return "unix:path=" + b.String()
}

// withoutEnv is env without the variable key.
func withoutEnv(env []string, key string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// keeperCommand is the hidden command of the keeper's process, which
// "busmedic keep" starts: not in the help, the completions or the man
// page, as completeCommand.
const keeperCommand = "keeper"

// runKeeper is "busmedic keeper": the keeper of a bus, until SIGTERM or
// SIGINT, or the end of the session. With --detach it only starts the
// keeper in a session of its own and exits, so that the keeper is no
// child of the app "busmedic keep" becomes.
func runKeeper(ctx context.Context, args []string, stderr io.Writer) int {
	// Only SIGTERM and SIGINT end the keeper: a hangup (main stops on
	// SIGHUP) must not take the kept apps' connections with it.
	signal.Ignore(syscall.SIGHUP)
	fs := flag.NewFlagSet(keeperCommand, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // the one line below says what is wrong
	bus := fs.String("bus", "session", "")
	socket := fs.String("socket", "", "")
	ctl := fs.String("control", control.DefaultPath(), "")
	readyFD := fs.Int("ready-fd", -1, "")
	detach := fs.Bool("detach", false, "")
	verbose := fs.Bool("v", false, "")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "busmedic %s: wrong command line %q\n", keeperCommand, args)
		return exitUsage
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
	log := newKeeperLogger(stderr, *verbose)
	err := daemon.RunKeeper(ctx, daemon.KeeperConfig{
		Bus: *bus, Socket: *socket, Control: *ctl, Ready: ready, Log: log,
		New: func(address func() (string, error), report func(control.KeptReport)) daemon.KeeperCore {
			return keep.New(keep.Config{Bus: *bus, Address: address, Logger: log, Report: report})
		},
	})
	switch {
	case errors.Is(err, control.ErrRunning):
		return exitOK // another keeper serves the socket
	case err != nil:
		log.Error("keeper failed", "err", err)
		return exitError
	}
	return exitOK
}

// detachKeeper starts the keeper of args (without --detach) in a session
// of its own, its stderr the journal if ours is, else its log file.
func detachKeeper(args []string, ready *os.File, socket string, stderr io.Writer) int {
	fail := func(err error) int {
		if ready != nil {
			fmt.Fprintln(ready, "error: "+err.Error())
		}
		fmt.Fprintf(stderr, "busmedic %s: %v\n", keeperCommand, err)
		return exitError
	}
	self, err := os.Executable()
	if err != nil {
		return fail(err)
	}
	var rest []string
	for _, a := range args {
		if a != "--detach" && a != "-detach" {
			rest = append(rest, a)
		}
	}
	logFile, ok := stderr.(*os.File)
	if !ok || !journallog.IsJournal(logFile) {
		if logFile, err = daemon.KeeperLog(socket); err != nil {
			return fail(err)
		}
		defer logFile.Close()
	}
	if err := daemon.SpawnKeeper(exec.Command(self, append([]string{keeperCommand}, rest...)...), ready, logFile); err != nil {
		return fail(err)
	}
	return exitOK
}

// newKeeperLogger is the keeper's log: to the journal when its stderr is
// the journal stream or a journal runs (then its log file is the
// fallback), else text to stderr, its log file.
func newKeeperLogger(stderr io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	if f, ok := stderr.(*os.File); ok && !journallog.IsJournal(f) && journal.Enabled() {
		return slog.New(journallog.NewJournalHandler(stderr, "busmedic", &slog.HandlerOptions{Level: level}))
	}
	return journallog.NewLogger(stderr, level)
}

// followReplays sends each replay of the keeper to out, as the daemon's
// status brings it (control's Follow, through the daemon's restarts),
// until ctx ends: "busmedic watch" prints them among the bus events.
// Replays from before since are old news.
func followReplays(ctx context.Context, socket string, since time.Time, out chan<- control.Replay) {
	seen := map[string]bool{}
	control.NewClient(socket).Follow(ctx, func(st *control.Status, err error) {
		if st == nil {
			return
		}
		for _, r := range control.NewReplays(st.Kept, seen) {
			if r.Time.Before(since) {
				continue
			}
			select {
			case out <- r:
			case <-ctx.Done():
				return
			}
		}
	})
}
