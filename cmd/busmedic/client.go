package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"busmedic/relaunch/control"
)

// requestTimeout bounds a request to the daemon; a relaunch waits for the
// app to be ready, which its rule bounds.
const requestTimeout = 2 * time.Minute

// clientFlags are the flags every client command takes.
func clientFlags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	socket := fs.String("socket", control.DefaultPath(), "the daemon's control socket")
	return fs, socket
}

// withDaemon dials the daemon and runs do within a bounded request time,
// reporting a failure under the command's name.
func withDaemon(ctx context.Context, socket string, stderr io.Writer, name string, do func(context.Context, *control.Client) error) int {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	c, err := control.Dial(ctx, socket)
	if err != nil {
		fmt.Fprintf(stderr, "busmedic %s: %v\nStart it with: busmedic run\n", name, err)
		return exitError
	}
	defer c.Close()
	if err := do(ctx, c); err != nil {
		fmt.Fprintf(stderr, "busmedic %s: %v\n", name, err)
		return exitError
	}
	return exitOK
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, socket := clientFlags("status", stderr)
	asJSON := fs.Bool("json", false, "print the status as JSON")
	if code, ok := parseFlags(fs, args, stdout, "busmedic status [--json]",
		"Shows the buses, the apps with their last recovery, and who fell off the bus."); !ok {
		return code
	}
	if !noArgs(fs, stderr, "status") {
		return exitUsage
	}
	return withDaemon(ctx, *socket, stderr, "status", func(ctx context.Context, c *control.Client) error {
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, st)
		}
		return st.WriteText(stdout)
	})
}

func runHistory(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, socket := clientFlags("history", stderr)
	asJSON := fs.Bool("json", false, "print the history as JSON")
	n := fs.Int("n", 10, "how many recoveries to show, newest first (0: all kept)")
	if code, ok := parseFlags(fs, args, stdout, "busmedic history [--json] [-n N]",
		"Shows the recent bus restarts and what busmedic did for each app."); !ok {
		return code
	}
	if !noArgs(fs, stderr, "history") {
		return exitUsage
	}
	return withDaemon(ctx, *socket, stderr, "history", func(ctx context.Context, c *control.Client) error {
		h, err := c.History(ctx, *n)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, h)
		}
		if len(h) == 0 {
			_, err := fmt.Fprintln(stdout, "No bus restarts recorded yet.")
			return err
		}
		for _, r := range h {
			if err := r.WriteText(stdout); err != nil {
				return err
			}
		}
		return nil
	})
}

func runRelaunch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, socket := clientFlags("relaunch", stderr)
	if code, ok := parseFlags(fs, args, stdout, "busmedic relaunch ID",
		"Recovers an app now: a rule's id, or a casualty's id from busmedic status."); !ok {
		return code
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "busmedic relaunch: want one app id (see busmedic status)")
		return exitUsage
	}
	return withDaemon(ctx, *socket, stderr, "relaunch "+fs.Arg(0), func(ctx context.Context, c *control.Client) error {
		job, err := c.Relaunch(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		line := job.App + ": " + job.Text()
		if !job.Outcome.Recovered() {
			// The daemon did its part; the app did not come back.
			return errors.New(line)
		}
		fmt.Fprintln(stdout, line)
		return nil
	})
}

// noArgs reports whether fs was given no arguments besides its flags, and
// says so on stderr if not.
func noArgs(fs *flag.FlagSet, stderr io.Writer, name string) bool {
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "busmedic %s: unexpected argument %q\n", name, fs.Arg(0))
		return false
	}
	return true
}

// simpleCommand is a client command that sends one request and reports OK.
func simpleCommand(name, about string, do func(context.Context, *control.Client) error) func(context.Context, []string, io.Writer, io.Writer) int {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) int {
		fs, socket := clientFlags(name, stderr)
		if code, ok := parseFlags(fs, args, stdout, "busmedic "+name, about); !ok {
			return code
		}
		if !noArgs(fs, stderr, name) {
			return exitUsage
		}
		return withDaemon(ctx, *socket, stderr, name, do)
	}
}

func printJSON(stdout io.Writer, v any) error {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runRestartBus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, socket := clientFlags("restart-bus", stderr)
	if code, ok := parseFlags(fs, args, stdout, "busmedic restart-bus [session|system]",
		"Restarts the session bus (through systemd, or the bus daemon busmedic manages), or the system bus\n"+
			"(through systemd, with your authorisation), and recovers the apps."); !ok {
		return code
	}
	bus := "session"
	switch {
	case fs.NArg() > 1:
		fmt.Fprintf(stderr, "busmedic restart-bus: unexpected argument %q\n", fs.Arg(1))
		return exitUsage
	case fs.NArg() == 1:
		bus = fs.Arg(0)
	}
	if bus != "session" && bus != "system" {
		fmt.Fprintf(stderr, "busmedic restart-bus: no bus %q (want session or system)\n", bus)
		return exitUsage
	}
	return withDaemon(ctx, *socket, stderr, "restart-bus", func(ctx context.Context, c *control.Client) error {
		if err := c.RestartBus(ctx, bus); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "The %s bus is restarting; busmedic recovers the apps (busmedic status).\n", bus)
		return nil
	})
}
