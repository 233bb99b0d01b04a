// Package cli is a declarative command tree: a program's commands,
// subcommands, flags and help texts as data (Command), and from them the one
// parser, the help (-h, help COMMAND), the usage errors and the answers to
// the shell completion scripts (the hidden __complete command). The program
// keeps its table of commands and their Run functions; this package knows
// nothing of what they do.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// Exit statuses of Run.
const (
	ExitOK    = 0
	ExitError = 1 // the command failed
	ExitUsage = 2 // the command line is wrong
)

// Program is a command tree and what its parsing and completion need to
// know of its flags.
type Program struct {
	Top *Command // the program itself: its Name is the program's
	// Passed names flags of Top that pass, given a value before the
	// command, to the command that declares them too (busmedic --config
	// FILE rules list); with a command that does not, it is a usage error.
	Passed []string
	// FlagWords are the values of the flags that take one of a few
	// words, and FileFlags the flags whose value is a file or directory
	// name, for completion.
	FlagWords map[string][]string
	FileFlags map[string]bool
}

// Command is one command or subcommand, as data: -h, help COMMAND and the
// man pages are made from its texts.
type Command struct {
	Name    string
	Summary string // its line in its parent's list of commands
	Usage   string // the usage line, after "Usage: "
	About   string // what it does, under the usage line
	// Flags declares its flags. A subcommand also takes its parent's,
	// before or after its name, except the top level's.
	Flags func(fs *flag.FlagSet)
	// It takes MinArgs to MaxArgs positional arguments; with Interleave,
	// flags may also follow them.
	MinArgs, MaxArgs int
	Interleave       bool
	Subs             []*Command // named by the first positional argument
	// ArgWords, ArgFiles and ArgComplete say what its positional
	// arguments are, for completion: words from a list, file names, or
	// what ArgComplete finds, given the flags on the command line so far.
	ArgWords    []string
	ArgFiles    bool
	ArgComplete func(ctx context.Context, flags *flag.FlagSet) []Candidate
	argCommands bool // a command of the parent (help COMMAND)
	// Run does the work, with the command line parsed, and returns the
	// exit status; nil for a command that only has subcommands.
	Run func(ctx context.Context, in *Call) int
}

// Call is a parsed command line, as a command's Run gets it.
type Call struct {
	prog           *Program
	path           []*Command    // from the top level to the command given
	Flags          *flag.FlagSet // the command's flags and its parents'
	Args           []string      // the positional arguments
	Stdout, Stderr io.Writer
}

// Run parses args and runs the command they name. -h prints the command's
// help on stdout (exit 0); a wrong command line is said on stderr with the
// usage (exit 2).
func (p *Program) Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == completeCommand {
		return p.runComplete(ctx, args[1:], stdout)
	}
	in, err := p.Parse(args)
	in.Stdout, in.Stderr = stdout, stderr
	if errors.Is(err, flag.ErrHelp) {
		in.help(stdout)
		return ExitOK
	} else if err != nil {
		return in.UsageError("%v", err)
	}
	c := in.Cmd()
	switch {
	case c.Run == nil:
		return in.UsageError("missing command")
	case len(in.Args) < c.MinArgs:
		return in.UsageError("missing argument")
	case len(in.Args) > c.MaxArgs:
		return in.UsageError("unexpected argument %q", in.Args[c.MaxArgs])
	}
	return c.Run(ctx, in)
}

// Parse reads args: flags into the Call's Flags, subcommands into its
// path, the rest into its Args. The error is flag.ErrHelp for -h.
func (p *Program) Parse(args []string) (*Call, error) {
	in := &Call{prog: p, path: []*Command{p.Top}, Flags: newFlagSet(p.Top.Name)}
	if p.Top.Flags != nil {
		p.Top.Flags(in.Flags)
	}
	return in, in.parse(args)
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard) // Run says what is wrong, once
	return fs
}

func (in *Call) parse(args []string) error {
	for {
		if err := in.Flags.Parse(args); err != nil {
			return err
		}
		rest := in.Flags.Args()
		if len(rest) == 0 {
			return nil
		}
		c := in.Cmd()
		if len(c.Subs) > 0 {
			sub := c.Sub(rest[0])
			if sub == nil {
				return fmt.Errorf("unknown command %q", rest[0])
			}
			var passed map[string]string
			if len(in.path) == 1 {
				// The top level's flags end here, but those it
				// passes go on to the command.
				passed = in.prog.passed(in.Flags)
				in.Flags = newFlagSet(in.prog.Top.Name)
			}
			in.path = append(in.path, sub)
			if sub.Flags != nil {
				sub.Flags(in.Flags)
			}
			if sub.Name != "help" {
				for _, name := range in.prog.Passed {
					value, ok := passed[name]
					if !ok {
						continue
					}
					if in.Flags.Lookup(name) == nil {
						return fmt.Errorf("--%s is for %s only", name, strings.Join(in.prog.declaring(name), " and "))
					}
					// Before the command's own flags: one after
					// the command wins.
					in.Flags.Set(name, value)
				}
			}
			args = rest[1:]
			continue
		}
		if n := len(args) - len(rest); !c.Interleave || n > 0 && args[n-1] == "--" {
			in.Args = append(in.Args, rest...)
			return nil
		}
		in.Args = append(in.Args, rest[0])
		args = rest[1:]
	}
}

// passed returns the values of the Passed flags that fs has, but for
// those left empty.
func (p *Program) passed(fs *flag.FlagSet) map[string]string {
	values := map[string]string{}
	for _, name := range p.Passed {
		if f := fs.Lookup(name); f != nil && f.Value.String() != "" {
			values[name] = f.Value.String()
		}
	}
	return values
}

// declaring names the commands below the top level that declare the flag
// name.
func (p *Program) declaring(name string) []string {
	var names []string
	for _, s := range p.Top.Subs {
		if s.Flags != nil && s.FlagSet().Lookup(name) != nil {
			names = append(names, p.Top.Name+" "+s.Name)
		}
	}
	return names
}

// FlagSet returns a new flag set with the command's own flags.
func (c *Command) FlagSet() *flag.FlagSet {
	fs := newFlagSet(c.Name)
	if c.Flags != nil {
		c.Flags(fs)
	}
	return fs
}

// Sub returns the subcommand name, or nil.
func (c *Command) Sub(name string) *Command {
	for _, s := range c.Subs {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// Cmd is the command given.
func (in *Call) Cmd() *Command { return in.path[len(in.path)-1] }

// Name is the command given, as "busmedic rules check".
func (in *Call) Name() string {
	names := make([]string, len(in.path))
	for i, c := range in.path {
		names[i] = c.Name
	}
	return strings.Join(names, " ")
}

// Str, On and Num are the values of its string, bool and int flags.
func (in *Call) Str(flag string) string { return in.Flags.Lookup(flag).Value.String() }
func (in *Call) On(flag string) bool    { return in.get(flag).(bool) }
func (in *Call) Num(flag string) int    { return in.get(flag).(int) }

func (in *Call) get(name string) any { return in.Flags.Lookup(name).Value.(flag.Getter).Get() }

// help writes the command's help: usage line, what it does, subcommands
// and flags.
func (in *Call) help(w io.Writer) {
	c := in.Cmd()
	fmt.Fprintf(w, "Usage: %s\n\n%s\n", c.Usage, c.About)
	in.listCommands(w)
	flags := false
	in.Flags.VisitAll(func(*flag.Flag) { flags = true })
	if flags {
		fmt.Fprintln(w, "\nOptions:")
		in.Flags.SetOutput(w)
		in.Flags.PrintDefaults()
	}
	if len(c.Subs) > 0 {
		fmt.Fprintf(w, "\nRun \"%s COMMAND -h\" for a command's options.\n", in.Name())
	}
}

func (in *Call) listCommands(w io.Writer) {
	width := 0
	for _, s := range in.Cmd().Subs {
		width = max(width, len(s.Name))
	}
	if width > 0 {
		fmt.Fprintln(w, "\nCommands:")
	}
	for _, s := range in.Cmd().Subs {
		fmt.Fprintf(w, "  %-*s  %s\n", width, s.Name, s.Summary)
	}
}

// UsageError says what is wrong with the command line, and the usage, on
// stderr, and returns ExitUsage.
func (in *Call) UsageError(format string, a ...any) int {
	fmt.Fprintf(in.Stderr, "%s: %s\nUsage: %s\n", in.Name(), fmt.Sprintf(format, a...), in.Cmd().Usage)
	if len(in.Cmd().Subs) > 0 {
		in.listCommands(in.Stderr)
		fmt.Fprintln(in.Stderr)
	}
	top := in.prog.Top.Name
	fmt.Fprintf(in.Stderr, "Run \"%s help%s\" for more.\n", top, strings.TrimPrefix(in.Name(), top))
	return ExitUsage
}

// Failf says why the command failed, on stderr, and returns ExitError.
func (in *Call) Failf(format string, a ...any) int {
	fmt.Fprintf(in.Stderr, "%s: %s\n", in.Name(), fmt.Sprintf(format, a...))
	return ExitError
}

// HelpCommand is the help subcommand of the command parent ("busmedic
// rules"): help [COMMAND [SUBCOMMAND]] is COMMAND SUBCOMMAND -h.
func HelpCommand(parent string) *Command {
	return &Command{
		Name: "help", Summary: "list the commands, or describe one: help COMMAND",
		Usage:   parent + " help [COMMAND [SUBCOMMAND]]",
		About:   "Lists the commands, or describes one: the same as " + parent + " COMMAND -h.",
		MaxArgs: 2, Run: runHelp, argCommands: true,
	}
}

// runHelp runs COMMAND SUBCOMMAND -h, below the command whose subcommand
// help is.
func runHelp(ctx context.Context, in *Call) int {
	var args []string
	for _, c := range in.path[1 : len(in.path)-1] {
		args = append(args, c.Name)
	}
	return in.prog.Run(ctx, append(append(args, in.Args...), "-h"), in.Stdout, in.Stderr)
}
