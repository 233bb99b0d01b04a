package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"busmedic/cmd/busmedic/internal/cli"
	"busmedic/relaunch/control"
)

// What "busmedic relaunch" asks before it destroys, and what "busmedic
// plan" and "busmedic relaunch --dry-run" print: the daemon's dry run
// (control.Client.Plan), which the rules editor's plan view shows too.

// refuseRunning refuses to relaunch the app id while it is running on its
// bus: a relaunch stops it and starts it again, which takes --force. It
// says so, and how to go ahead.
func refuseRunning(ctx context.Context, c *control.Client, id string) error {
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	a, ok := st.App(id)
	if !ok || !a.Running {
		return nil
	}
	return fmt.Errorf("%s: relaunching it would stop it and start it again.\n"+
		"To do that: busmedic relaunch --force %s\nTo see what it would start: busmedic relaunch --dry-run %s", a.Where(), id, id)
}

// runRelaunchDryRun is "busmedic relaunch --dry-run ID": what a relaunch
// would do, and what a restart of the app's bus would do for it now.
func runRelaunchDryRun(ctx context.Context, in *cli.Call) int {
	id := in.Args[0]
	return withDaemon(ctx, in, func(ctx context.Context, c *control.Client) error {
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		if a, ok := st.App(id); ok {
			if a.Running {
				fmt.Fprintf(in.Stdout, "%s: busmedic relaunch --force %s would stop it and start it again.\n", a.Where(), id)
			} else {
				fmt.Fprintf(in.Stdout, "%s is not running: busmedic relaunch %s would start it.\n", id, id)
			}
			return writeAppPlans(ctx, in.Stdout, c, a)
		}
		cas, ok := st.Casualty(id)
		if !ok {
			return unknownApp(id)
		}
		fmt.Fprintf(in.Stdout, "%s fell off the %s bus (%s): busmedic relaunch %s would start it again", id, cas.Bus, cas.Peer, id)
		if len(cas.Peer.Argv) > 0 {
			fmt.Fprintf(in.Stdout, ":\n  command: %s", strings.Join(cas.Peer.Argv, " "))
			if cas.Peer.Cwd != "" {
				fmt.Fprintf(in.Stdout, "\n  in: %s", cas.Peer.Cwd)
			}
		}
		fmt.Fprintln(in.Stdout)
		return nil
	})
}

// unknownApp is the error of an id that is neither an app nor a casualty.
func unknownApp(id string) error {
	return fmt.Errorf("%w: %s (busmedic status lists them)", control.ErrUnknownApp, id)
}

// runPlan is "busmedic plan [ID]": what a restart of each bus, or of the
// app's, would do now.
func runPlan(ctx context.Context, in *cli.Call) int {
	return withDaemon(ctx, in, func(ctx context.Context, c *control.Client) error {
		if len(in.Args) == 0 {
			for _, bus := range []string{"session", "system"} {
				jobs, err := c.Plan(ctx, bus)
				if err != nil {
					return err
				}
				if err := control.WritePlanText(in.Stdout, bus, jobs); err != nil {
					return err
				}
			}
			return nil
		}
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		a, ok := st.App(in.Args[0])
		if !ok {
			return unknownApp(in.Args[0])
		}
		return writeAppPlans(ctx, in.Stdout, c, a)
	})
}

// writeAppPlans writes what a restart of each of app a's buses would do
// for it now.
func writeAppPlans(ctx context.Context, w io.Writer, c *control.Client, a control.AppStatus) error {
	for _, bus := range a.Buses() {
		jobs, err := c.Plan(ctx, bus)
		if err != nil {
			return err
		}
		if err := control.WriteAppPlanText(w, bus, a.ID, jobs); err != nil {
			return err
		}
	}
	return nil
}
