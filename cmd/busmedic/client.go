package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
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

func dialDaemon(ctx context.Context, socket string, stderr io.Writer, cmd string) (*control.Client, bool) {
	c, err := control.Dial(ctx, socket)
	if err != nil {
		fmt.Fprintf(stderr, "busmedic %s: %v\nStart it with: busmedic run\n", cmd, err)
		return nil, false
	}
	return c, true
}

// withDaemon dials the daemon and runs do within a bounded request time,
// reporting a failure under the command's name.
func withDaemon(ctx context.Context, socket string, stderr io.Writer, name string, do func(context.Context, *control.Client) error) int {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	c, ok := dialDaemon(ctx, socket, stderr, name)
	if !ok {
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
		printStatus(stdout, st)
		return nil
	})
}

func printStatus(w io.Writer, st control.Status) {
	for _, b := range st.Buses {
		state := "up"
		if !b.Up {
			state = "DOWN"
		}
		fmt.Fprintf(w, "%s bus: %s since %s", b.Name, state, clock(b.Since))
		if b.Up {
			if b.Peers == 1 {
				fmt.Fprint(w, " (1 peer)")
			} else {
				fmt.Fprintf(w, " (%d peers)", b.Peers)
			}
		} else if b.Reason != "" {
			fmt.Fprintf(w, ": %s", b.Reason)
		}
		fmt.Fprintln(w)
		if b.Outdated != "" {
			fmt.Fprintf(w, "  update installed: restart the %s bus to finish it (busmedic restart-bus %s)\n  %s\n", b.Name, b.Name, b.Outdated)
		}
	}
	if st.Paused {
		fmt.Fprintln(w, "Recovery is paused (busmedic resume).")
	}
	if st.RulesError != "" {
		fmt.Fprintf(w, "Rules file has errors; the last good rules stay in force:\n%s\n", st.RulesError)
	}
	if len(st.Apps) == 0 {
		fmt.Fprintln(w, "No apps registered (see busmedic rules).")
	} else {
		fmt.Fprintln(w, "\nApps:")
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		for _, a := range st.Apps {
			running := "not running"
			if a.Running {
				running = "running"
			}
			if !a.Enabled {
				running = "disabled"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", a.ID, a.Action, running, jobLine(a.Last))
		}
		tw.Flush()
	}
	if len(st.Casualties) > 0 {
		fmt.Fprintln(w, "\nFell off the bus (no rule; busmedic relaunch ID):")
		for _, c := range st.Casualties {
			fmt.Fprintf(w, "  %s  %s bus  %s  %s\n", c.ID, c.Bus, c.Peer, strings.Join(c.Peer.Argv, " "))
		}
	}
}

func jobLine(j *control.Job) string {
	if j == nil {
		return ""
	}
	s := fmt.Sprintf("last: %s at %s", j.Outcome, clock(j.Started))
	if j.Took > 0 {
		s += fmt.Sprintf(" (%s)", j.Took.Round(time.Millisecond))
	}
	if j.Reason != "" {
		s += ": " + j.Reason
	}
	return s
}

func clock(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("15:04:05")
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
		printHistory(stdout, h)
		return nil
	})
}

func printHistory(w io.Writer, h []control.Recovery) {
	if len(h) == 0 {
		fmt.Fprintln(w, "No bus restarts recorded yet.")
	}
	for _, r := range h {
		fmt.Fprintf(w, "%s %s bus restarted (down %s)", r.Started.Local().Format("2006-01-02 15:04:05"), r.Bus, r.Downtime.Round(time.Millisecond))
		if r.Decision != "" {
			fmt.Fprintf(w, ": %s", r.Decision)
		}
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		for _, j := range r.Jobs {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", j.App, j.Outcome, j.Took.Round(time.Millisecond), j.Reason)
		}
		tw.Flush()
	}
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
		line := fmt.Sprintf("%s: %s", job.App, strings.TrimPrefix(jobLine(&job), "last: "))
		if !recovered(job.Outcome) {
			// The daemon did its part; the app did not come back.
			return errors.New(line)
		}
		fmt.Fprintln(stdout, line)
		return nil
	})
}

// recovered reports whether a job with outcome o brought its app back, or
// did what its rule says (signal, hook, notify): anything else makes a
// command exit 1.
func recovered(o control.Outcome) bool {
	switch o {
	case control.Reconnected, control.Relaunched, control.Signalled, control.Hooked, control.Notified:
		return true
	}
	return false // failed, skipped, cancelled, or not ended
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
