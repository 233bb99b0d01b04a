package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"busmedic/relaunch/control"
)

// requestTimeout bounds a request to the daemon; a relaunch waits for the
// app to be ready, which its rule bounds.
const requestTimeout = 2 * time.Minute

// clientFlags are the flags of a client command: --socket, -v, and those
// others declares.
func clientFlags(others func(*flag.FlagSet)) func(*flag.FlagSet) {
	return func(fs *flag.FlagSet) {
		fs.String("socket", control.DefaultPath(), "the daemon's control socket")
		if others != nil {
			others(fs)
		}
		if fs.Lookup("v") == nil {
			fs.Bool("v", false, "with a failure, also say what the system said (such as the socket's error)")
		}
	}
}

// withDaemon dials the daemon and runs do within a bounded request time,
// reporting a failure under the command's name (daemonFailed).
func (in *call) withDaemon(ctx context.Context, do func(context.Context, *control.Client) error) int {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	c, err := control.Dial(ctx, in.str("socket"))
	if err == nil {
		defer c.Close()
		err = do(ctx, c)
	}
	if err != nil {
		return in.daemonFailed(ctx, err)
	}
	return exitOK
}

// daemonFailed says once, in words and with the next step, why a request
// to the daemon failed: the daemon's own message, or for the errors of the
// contract (control.ErrNotRunning...) words of our own; with -v, the error
// as it came too. "busmedic status" exits exitNotRunning when there is no
// daemon, the others exitError.
func (in *call) daemonFailed(ctx context.Context, err error) int {
	code := exitError
	var msg string
	switch {
	case errors.Is(err, control.ErrNotRunning):
		msg = "busmedic is not running"
		if socket := in.str("socket"); socket != control.DefaultPath() {
			msg += " with the control socket " + socket
		}
		msg += " (start it with: busmedic run, or busmedic autostart enable)"
		if in.cmd().name == "status" {
			code = exitNotRunning
		}
	case errors.Is(err, control.ErrTooManyClients):
		msg = "busmedic is serving too many clients at once; try again in a moment"
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		msg = fmt.Sprintf("busmedic did not answer within %s", requestTimeout)
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		msg = "interrupted"
	default:
		msg = in.unecho(err.Error())
	}
	if detail := strings.TrimPrefix(err.Error(), control.ErrNotRunning.Error()+": "); in.on("v") && msg != detail {
		msg += "\n  " + detail
	}
	fmt.Fprintf(in.stderr, "%s: %s\n", in.name(), msg)
	return code
}

// unecho drops from the front of a message what only repeats the command
// ("relaunch nosuch: ", "control relaunch: "), since failf's prefix says it
// already.
func (in *call) unecho(msg string) string {
	word := in.cmd().name
	echoes := []string{in.name(), "busmedic", word, "control " + word}
	if len(in.args) > 0 {
		echoes = append(echoes, word+" "+strings.Join(in.args, " "))
	}
	for trimmed := true; trimmed; {
		trimmed = false
		for _, e := range echoes {
			if rest, ok := strings.CutPrefix(msg, e+": "); ok && rest != "" {
				msg, trimmed = rest, true
			}
		}
	}
	return msg
}

// request is a client command that sends one request and reports OK.
func request(do func(context.Context, *control.Client) error) func(context.Context, *call) int {
	return func(ctx context.Context, in *call) int { return in.withDaemon(ctx, do) }
}

func runStatus(ctx context.Context, in *call) int {
	return in.withDaemon(ctx, func(ctx context.Context, c *control.Client) error {
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		if in.on("json") {
			return printJSON(in, st)
		}
		return st.WriteText(in.stdout)
	})
}

func runHistory(ctx context.Context, in *call) int {
	return in.withDaemon(ctx, func(ctx context.Context, c *control.Client) error {
		h, err := c.History(ctx, in.num("n"))
		if err != nil {
			return err
		}
		if in.on("json") {
			return printJSON(in, h)
		}
		if len(h) == 0 {
			_, err := fmt.Fprintln(in.stdout, "No bus restarts recorded yet.")
			return err
		}
		for _, r := range h {
			if err := r.WriteText(in.stdout); err != nil {
				return err
			}
		}
		return nil
	})
}

func runRelaunch(ctx context.Context, in *call) int {
	if in.on("dry-run") {
		return runRelaunchDryRun(ctx, in)
	}
	return in.withDaemon(ctx, func(ctx context.Context, c *control.Client) error {
		if !in.on("force") {
			// A running app is stopped first: that takes --force.
			if err := refuseRunning(ctx, c, in.args[0]); err != nil {
				return err
			}
		}
		job, err := c.Relaunch(ctx, in.args[0])
		if errors.Is(err, control.ErrUnknownApp) {
			return fmt.Errorf("no app or casualty %q (busmedic status lists them)", in.args[0])
		}
		if err != nil {
			return err
		}
		line := job.App + ": " + job.Text()
		if !job.Outcome.Recovered() {
			// The daemon did its part; the app did not come back.
			return errors.New(line)
		}
		fmt.Fprintln(in.stdout, line)
		return nil
	})
}

func runRestartBus(ctx context.Context, in *call) int {
	bus := "session"
	if len(in.args) == 1 {
		bus = in.args[0]
	}
	if bus != "session" && bus != "system" {
		return in.usageError("no bus %q (want session or system)", bus)
	}
	return in.withDaemon(ctx, func(ctx context.Context, c *control.Client) error {
		if err := c.RestartBus(ctx, bus); err != nil {
			return err
		}
		fmt.Fprintf(in.stdout, "The %s bus is restarting; busmedic recovers the apps (busmedic status).\n", bus)
		return nil
	})
}

func printJSON(in *call, v any) error {
	enc := json.NewEncoder(in.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
