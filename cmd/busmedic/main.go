// Command busmedic keeps a Linux desktop session usable when a D-Bus bus
// restarts. This file only parses the command line and hands each
// subcommand to the package that does the work.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
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
		{"watch", "stream bus events (up, down, restarted, peers) until interrupted", runWatch},
		{"rules", "list, check and add relaunch rules", runRules},
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
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
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
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
