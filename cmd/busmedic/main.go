// Command busmedic keeps a Linux desktop session usable when a D-Bus bus
// restarts. This file only parses the command line and hands each
// subcommand to the package that does the work.
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
	"syscall"

	"busmedic/journallog"
	"busmedic/relaunch/control"
)

// command is one subcommand: it gets its own arguments and returns the exit
// status.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"run", "run busmedic: watch both buses and recover apps after a restart", runDaemon},
		{"status", "show the buses, the apps and who fell off the bus", runStatus},
		{"history", "show recent bus restarts and what was done", runHistory},
		{"relaunch", "recover an app now: relaunch ID", runRelaunch},
		{"restart-bus", "restart the session bus and recover the apps", runRestartBus},
		{"pause", "pause recovery until resume", simpleCommand("pause", "Pauses recovery: after a restart, no app is touched until busmedic resume.",
			func(ctx context.Context, c *control.Client) error { return c.Pause(ctx) })},
		{"resume", "resume recovery", simpleCommand("resume", "Resumes recovery after busmedic pause.",
			func(ctx context.Context, c *control.Client) error { return c.Resume(ctx) })},
		{"reload", "make the daemon re-read the rules now", simpleCommand("reload", "Makes the daemon re-read the rules files now.",
			func(ctx context.Context, c *control.Client) error { return c.Reload(ctx) })},
		{"tray", "run the tray icon (busmedic run starts it)", runTray},
		{"watch", "stream bus events (up, down, restarted, peers) until interrupted", runWatch},
		{"rules", "list, check, add and edit relaunch rules", runRules},
		{"autostart", "start busmedic with the session: autostart enable|disable|status", runAutostart},
		{"version", "print busmedic's version", runVersion},
		{"help", "list the commands, or describe one: help COMMAND", runHelp},
	}
}

// Exit statuses, documented in the README.
const (
	exitOK    = 0
	exitError = 1 // the command failed (bad rules, unreachable daemon...)
	exitUsage = 2 // the command line is wrong
)

func main() {
	// SIGINT and SIGTERM end the command cleanly: "watch" exits 0 on Ctrl-C.
	// SIGHUP too: a session tearing down hangs up on its children, and
	// the daemon must then end without recovering anything.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "busmedic: unknown command %q\n\n", name)
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "busmedic keeps a desktop session usable when a D-Bus bus restarts.")
	fmt.Fprintln(w, "\nUsage: busmedic COMMAND [ARGUMENTS]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun \"busmedic COMMAND -h\" for a command's options.")
}

func runHelp(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] && c.name != "help" {
			return c.run(ctx, []string{"-h"}, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "busmedic help: unknown command %q\n", args[0])
	return exitUsage
}

// parseFlags parses a subcommand's flags; on -h it prints the usage to
// stdout. ok is false when the command should end with code.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer, usage, about string) (code int, ok bool) {
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: %s\n\n%s\n\n", usage, about)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fs.Usage()
			return exitOK, false
		}
		return exitUsage, false
	}
	return 0, true
}

// newLogger is the log of a long-running command: text to w at level, or
// with every debug detail when -v was given. When w is the journal stream
// systemd gave busmedic.service, each record carries its priority, so that
// journalctl shows errors as errors (package journallog); the tray child
// inherits the stream and does the same.
func newLogger(w io.Writer, level slog.Level, verbose bool) *slog.Logger {
	if verbose {
		level = slog.LevelDebug
	}
	opts := &slog.HandlerOptions{Level: level}
	if f, ok := w.(*os.File); ok && journallog.IsJournal(f) {
		return slog.New(journallog.NewHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
