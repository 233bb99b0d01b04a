// Command busmedic keeps a Linux desktop session usable when a D-Bus bus
// restarts. This package is busmedic's command line: the table of its
// commands, flags and help texts (commands.go, which package cli parses),
// and the client commands; each command hands the work to the package
// that does it.
package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"busmedic/cmd/busmedic/internal/cli"
	"busmedic/daemon"
	"busmedic/journallog"
)

// Exit statuses, documented in the README.
const (
	exitOK    = cli.ExitOK
	exitError = cli.ExitError // the command failed (bad rules, unreachable daemon...)
	exitUsage = cli.ExitUsage // the command line is wrong
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

// run runs the command args name (see cli.Program.Run).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == daemon.KeeperCommand {
		// Hidden, as __complete is: the keeper process that "busmedic
		// keep" starts, not a command for people.
		return runKeeper(ctx, args[1:], stderr)
	}
	return program().Run(ctx, args, stdout, stderr)
}

// runTop is busmedic without a command: --version.
func runTop(ctx context.Context, in *cli.Call) int {
	if in.On("version") || in.On("V") {
		return runVersion(ctx, in)
	}
	return in.UsageError("missing command")
}

// logger is the log of a long-running command (run, tray, watch): to
// stderr at level, or with every debug detail when -v was given; to the
// journal under busmedic.service (journallog.NewLogger).
func logger(in *cli.Call, level slog.Level) *slog.Logger {
	if in.On("v") {
		level = slog.LevelDebug
	}
	return journallog.NewLogger(in.Stderr, level)
}
