package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"busmedic/cmd/busmedic/internal/cli"
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
func withDaemon(ctx context.Context, in *cli.Call, do func(context.Context, *control.Client) error) int {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	c, err := control.Dial(ctx, in.Str("socket"))
	if err == nil {
		defer c.Close()
		err = do(ctx, c)
	}
	if err != nil {
		return daemonFailed(ctx, in, err)
	}
	return exitOK
}

// daemonFailed says once, in words and with the next step, why a request
// to the daemon failed: the daemon's own message, or for the errors of the
// contract (control.ErrNotRunning...) words of our own; with -v, the error
// as it came too. "busmedic status" exits exitNotRunning when there is no
// daemon, the others exitError.
func daemonFailed(ctx context.Context, in *cli.Call, err error) int {
	msg, code := explain(ctx, in, err)
	fmt.Fprintf(in.Stderr, "%s: %s\n", in.Name(), msg)
	return code
}

// explain is daemonFailed's words for err, and the exit status.
func explain(ctx context.Context, in *cli.Call, err error) (msg string, code int) {
	code = exitError
	switch {
	case errors.Is(err, control.ErrNotRunning):
		msg = "busmedic is not running"
		if socket := in.Str("socket"); socket != control.DefaultPath() {
			msg += " with the control socket " + socket
		}
		msg += " (start it with: busmedic run, or busmedic autostart enable)"
		if in.Cmd().Name == "status" {
			code = exitNotRunning
		}
	case errors.Is(err, control.ErrTooManyClients):
		msg = "busmedic is serving too many clients at once; try again in a moment"
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil:
		msg = fmt.Sprintf("busmedic did not answer within %s", requestTimeout)
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		msg = "interrupted"
	default:
		msg = unecho(in, err.Error())
	}
	if detail := strings.TrimPrefix(err.Error(), control.ErrNotRunning.Error()+": "); in.On("v") && msg != detail {
		msg += "\n  " + detail
	}
	return msg, code
}

// unecho drops from the front of a message what only repeats the command
// ("relaunch nosuch: ", "control relaunch: "), since failf's prefix says it
// already.
func unecho(in *cli.Call, msg string) string {
	word := in.Cmd().Name
	echoes := []string{in.Name(), "busmedic", word, "control " + word}
	if len(in.Args) > 0 {
		echoes = append(echoes, word+" "+strings.Join(in.Args, " "))
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
func request(do func(context.Context, *control.Client) error) func(context.Context, *cli.Call) int {
	return func(ctx context.Context, in *cli.Call) int { return withDaemon(ctx, in, do) }
}

func runStatus(ctx context.Context, in *cli.Call) int {
	if in.On("follow") {
		return followStatus(ctx, in)
	}
	return withDaemon(ctx, in, func(ctx context.Context, c *control.Client) error {
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		if in.On("json") {
			return printJSON(in, st)
		}
		return st.WriteText(in.Stdout)
	})
}

func runHistory(ctx context.Context, in *cli.Call) int {
	return withDaemon(ctx, in, func(ctx context.Context, c *control.Client) error {
		h, err := c.History(ctx, in.Num("n"))
		if err != nil {
			return err
		}
		if in.On("json") {
			return printJSON(in, h)
		}
		return control.WriteHistoryText(in.Stdout, h)
	})
}

func runRelaunch(ctx context.Context, in *cli.Call) int {
	if in.On("dry-run") {
		return runRelaunchDryRun(ctx, in)
	}
	return withDaemon(ctx, in, func(ctx context.Context, c *control.Client) error {
		id := in.Args[0]
		job, err := c.Relaunch(ctx, id, in.On("force"))
		switch {
		case errors.Is(err, control.ErrAppRunning):
			return fmt.Errorf("%w.\nTo do that: busmedic relaunch --force %s\nTo see what it would start: busmedic relaunch --dry-run %s", err, id, id)
		case errors.Is(err, control.ErrUnknownApp):
			return fmt.Errorf("no app or casualty %q (busmedic status lists them)", id)
		}
		if err != nil {
			return err
		}
		line := job.App + ": " + job.Text()
		if !job.Outcome.Recovered() {
			// The daemon did its part; the app did not come back.
			return errors.New(line)
		}
		fmt.Fprintln(in.Stdout, line)
		return nil
	})
}

func runRestartBus(ctx context.Context, in *cli.Call) int {
	bus := "session"
	if len(in.Args) == 1 {
		bus = in.Args[0]
	}
	if bus != "session" && bus != "system" {
		return in.UsageError("no bus %q (want session or system)", bus)
	}
	return withDaemon(ctx, in, func(ctx context.Context, c *control.Client) error {
		if err := c.RestartBus(ctx, bus); err != nil {
			return err
		}
		fmt.Fprintf(in.Stdout, "The %s bus is restarting; busmedic recovers the apps (busmedic status).\n", bus)
		return nil
	})
}

func printJSON(in *cli.Call, v any) error {
	enc := json.NewEncoder(in.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// followStatus is "busmedic status --follow": the status now and again at
// each change, through the daemon's restarts and absences, until
// interrupted (which exits 0, as watch).
func followStatus(ctx context.Context, in *cli.Call) int {
	var away string // why there is no daemon, as said last
	err := control.NewClient(in.Str("socket")).WriteFollow(ctx, in.Stdout, in.On("json"), func(err error) {
		msg := ""
		if err != nil {
			msg, _ = explain(ctx, in, err)
		}
		if msg != away && msg != "" {
			fmt.Fprintf(in.Stderr, "%s: %s; waiting for it\n", in.Name(), msg)
		}
		away = msg
	})
	if err != nil {
		// The reader went away (a closed pipe): nothing left to do.
		return exitError
	}
	return exitOK
}
