// Command busmedic keeps a Linux desktop session usable when a D-Bus bus
// restarts. This package parses the command line (the table of commands is
// in commands.go) and hands each command to the package that does the work.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"busmedic/journallog"
)

// command is one command or subcommand, as data: -h, help COMMAND and the
// man pages are made from its texts.
type command struct {
	name    string
	summary string // its line in its parent's list of commands
	usage   string // the usage line, after "Usage: "
	about   string // what it does, under the usage line
	// flags declares its flags. A subcommand also takes its parent's,
	// before or after its name, except the top level's (--version).
	flags func(fs *flag.FlagSet)
	// It takes minArgs to maxArgs positional arguments; with interleave,
	// flags may also follow them.
	minArgs, maxArgs int
	interleave       bool
	subs             []*command // named by the first positional argument
	// argKind and argWords say what its positional arguments are, for
	// the shell completion (completion.go).
	argKind  argKind
	argWords []string
	// run does the work, with the command line parsed; nil for a command
	// that only has subcommands.
	run func(ctx context.Context, in *call) int
}

// call is a parsed command line, as a command's run gets it.
type call struct {
	path           []*command // from the top level to the command given
	fs             *flag.FlagSet
	args           []string // the positional arguments
	stdout, stderr io.Writer
}

// Exit statuses, documented in the README.
const (
	exitOK    = 0
	exitError = 1 // the command failed (bad rules, unreachable daemon...)
	exitUsage = 2 // the command line is wrong
	// exitNotRunning is "busmedic status" finding no daemon, as
	// "systemctl status" exits 3 for a unit that is not active.
	exitNotRunning = 3
)

func main() {
	// SIGINT and SIGTERM end the command cleanly: "watch" exits 0 on Ctrl-C.
	// SIGHUP too: a session tearing down hangs up on its children, and
	// the daemon must then end without recovering anything.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args and runs the command they name. -h prints the command's
// help on stdout (exit 0); a wrong command line is said on stderr with the
// usage (exit 2).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == completeCommand {
		return runComplete(ctx, args[1:], stdout)
	}
	if len(args) > 0 && args[0] == keeperCommand {
		return runKeeper(ctx, args[1:], stderr)
	}
	in := &call{path: []*command{topLevel()}, fs: newFlagSet(), stdout: stdout, stderr: stderr}
	in.cmd().flags(in.fs)
	if err := in.parse(args); errors.Is(err, flag.ErrHelp) {
		in.help(stdout)
		return exitOK
	} else if err != nil {
		return in.usageError("%v", err)
	}
	c := in.cmd()
	switch {
	case c.run == nil:
		return in.usageError("missing command")
	case len(in.args) < c.minArgs:
		return in.usageError("missing argument")
	case len(in.args) > c.maxArgs:
		return in.usageError("unexpected argument %q", in.args[c.maxArgs])
	}
	return c.run(ctx, in)
}

func newFlagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("busmedic", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // run says what is wrong, once
	return fs
}

// parse reads args: flags into in.fs, subcommands into in.path, the rest
// into in.args.
func (in *call) parse(args []string) error {
	for {
		if err := in.fs.Parse(args); err != nil {
			return err
		}
		rest := in.fs.Args()
		if len(rest) == 0 {
			return nil
		}
		c := in.cmd()
		if len(c.subs) > 0 {
			sub := c.sub(rest[0])
			if sub == nil {
				return fmt.Errorf("unknown command %q", rest[0])
			}
			config := ""
			if len(in.path) == 1 {
				// The top level's flags end here, but its --config
				// passes to the command that reads the rules.
				config = in.str("config")
				in.fs = newFlagSet()
			}
			in.path = append(in.path, sub)
			if sub.flags != nil {
				sub.flags(in.fs)
			}
			if config != "" && sub.name != "help" {
				if in.fs.Lookup("config") == nil {
					return fmt.Errorf("--config is for %s only", strings.Join(readsRules(in.path[0]), " and "))
				}
				// Before the command's own flags: a --config after
				// the command wins.
				in.fs.Set("config", config)
			}
			args = rest[1:]
			continue
		}
		if n := len(args) - len(rest); !c.interleave || n > 0 && args[n-1] == "--" {
			in.args = append(in.args, rest...)
			return nil
		}
		in.args = append(in.args, rest[0])
		args = rest[1:]
	}
}

// readsRules names the commands below top that take --config: those that
// read the rules.
func readsRules(top *command) []string {
	var names []string
	for _, s := range top.subs {
		if s.flags == nil {
			continue
		}
		fs := newFlagSet()
		s.flags(fs)
		if fs.Lookup("config") != nil {
			names = append(names, "busmedic "+s.name)
		}
	}
	return names
}

func (c *command) sub(name string) *command {
	for _, s := range c.subs {
		if s.name == name {
			return s
		}
	}
	return nil
}

// cmd is the command given.
func (in *call) cmd() *command { return in.path[len(in.path)-1] }

// name is the command given, as "busmedic rules check".
func (in *call) name() string {
	names := make([]string, len(in.path))
	for i, c := range in.path {
		names[i] = c.name
	}
	return strings.Join(names, " ")
}

// str, on and num are the values of its string, bool and int flags.
func (in *call) str(flag string) string { return in.fs.Lookup(flag).Value.String() }
func (in *call) on(flag string) bool    { return in.get(flag).(bool) }
func (in *call) num(flag string) int    { return in.get(flag).(int) }

func (in *call) get(name string) any { return in.fs.Lookup(name).Value.(flag.Getter).Get() }

// help writes the command's help: usage line, what it does, subcommands
// and flags.
func (in *call) help(w io.Writer) {
	c := in.cmd()
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", c.usage, c.about)
	in.listCommands(w)
	flags := false
	in.fs.VisitAll(func(*flag.Flag) { flags = true })
	if flags {
		fmt.Fprintln(w, "\nOptions:")
		in.fs.SetOutput(w)
		in.fs.PrintDefaults()
	}
	if len(c.subs) > 0 {
		fmt.Fprintf(w, "\nRun \"%s COMMAND -h\" for a command's options.\n", in.name())
	}
}

func (in *call) listCommands(w io.Writer) {
	width := 0
	for _, s := range in.cmd().subs {
		width = max(width, len(s.name))
	}
	if width > 0 {
		fmt.Fprintln(w, "\nCommands:")
	}
	for _, s := range in.cmd().subs {
		fmt.Fprintf(w, "  %-*s  %s\n", width, s.name, s.summary)
	}
}

// usageError says what is wrong with the command line, and the usage, on
// stderr.
func (in *call) usageError(format string, a ...any) int {
	fmt.Fprintf(in.stderr, "%s: %s\nUsage: %s\n", in.name(), fmt.Sprintf(format, a...), in.cmd().usage)
	if len(in.cmd().subs) > 0 {
		in.listCommands(in.stderr)
		fmt.Fprintln(in.stderr)
	}
	fmt.Fprintf(in.stderr, "Run \"busmedic help%s\" for more.\n", strings.TrimPrefix(in.name(), "busmedic"))
	return exitUsage
}

// failf says why the command failed, on stderr.
func (in *call) failf(format string, a ...any) int {
	fmt.Fprintf(in.stderr, "%s: %s\n", in.name(), fmt.Sprintf(format, a...))
	return exitError
}

// runTop is busmedic without a command: --version.
func runTop(ctx context.Context, in *call) int {
	if in.on("version") || in.on("V") {
		return runVersion(ctx, in)
	}
	return in.usageError("missing command")
}

// runHelp is "help [COMMAND [SUBCOMMAND]]": COMMAND SUBCOMMAND -h, below
// the command whose subcommand help is.
func runHelp(ctx context.Context, in *call) int {
	var args []string
	for _, c := range in.path[1 : len(in.path)-1] {
		args = append(args, c.name)
	}
	return run(ctx, append(append(args, in.args...), "-h"), in.stdout, in.stderr)
}

// newLogger is the log of a long-running command: text to w at level, or
// with every debug detail when -v was given. When w is the journal stream
// systemd gave busmedic.service, each record goes to the journal with its
// priority and its fields (MESSAGE_ID, BUS, APP...), so that journalctl
// shows errors as errors and counts recoveries (package journallog); the
// tray child inherits the stream and does the same.
func newLogger(w io.Writer, level slog.Level, verbose bool) *slog.Logger {
	if verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	if f, ok := w.(*os.File); ok && journallog.IsJournal(f) {
		return slog.New(journallog.NewJournalHandler(w, "busmedic", opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
