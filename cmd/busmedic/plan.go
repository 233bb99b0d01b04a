package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"busmedic/cmd/busmedic/internal/cli"
	"busmedic/relaunch/control"
)

// What "busmedic relaunch" asks before it destroys, and what "busmedic
// plan" and "busmedic relaunch --dry-run" print: the daemon's dry run
// (control.Client.Plan), which the rules editor's plan view shows too.

// appBuses are the buses whose restart concerns app a.
func appBuses(a control.AppStatus) []string {
	switch a.Bus {
	case "system":
		return []string{"system"}
	case "both":
		return []string{"session", "system"}
	}
	return []string{"session"}
}

// findApp returns the app id of st, if it is one.
func findApp(st control.Status, id string) (control.AppStatus, bool) {
	for _, a := range st.Apps {
		if a.ID == id {
			return a, true
		}
	}
	return control.AppStatus{}, false
}

func pidList(pids []int) string {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ", ")
}

// running says where app a runs, "dunst is running (pid 4242) on the
// session bus", for a running app.
func running(a control.AppStatus) string {
	s := a.ID + " is running"
	if len(a.PIDs) > 0 {
		s += " (pid " + pidList(a.PIDs) + ")"
	}
	// A relaunch acts on the session bus of an app on both.
	return s + " on the " + appBuses(a)[0] + " bus"
}

// refuseRunning refuses to relaunch the app id while it is running on its
// bus: a relaunch stops it and starts it again, which takes --force. It
// says so, and how to go ahead.
func refuseRunning(ctx context.Context, c *control.Client, id string) error {
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	a, ok := findApp(st, id)
	if !ok || !a.Running {
		return nil
	}
	return fmt.Errorf("%s: relaunching it would stop it and start it again.\n"+
		"To do that: busmedic relaunch --force %s\nTo see what it would start: busmedic relaunch --dry-run %s", running(a), id, id)
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
		if a, ok := findApp(st, id); ok {
			if a.Running {
				fmt.Fprintf(in.Stdout, "%s: busmedic relaunch --force %s would stop it and start it again.\n", running(a), id)
			} else {
				fmt.Fprintf(in.Stdout, "%s is not running: busmedic relaunch %s would start it.\n", id, id)
			}
			return writeAppPlans(ctx, in.Stdout, c, a)
		}
		for _, cas := range st.Casualties {
			if cas.ID != id {
				continue
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
		}
		return unknownApp(id)
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
		a, ok := findApp(st, in.Args[0])
		if !ok {
			return unknownApp(in.Args[0])
		}
		return writeAppPlans(ctx, in.Stdout, c, a)
	})
}

// writeAppPlans writes what a restart of each of app a's buses would do
// for it now.
func writeAppPlans(ctx context.Context, w io.Writer, c *control.Client, a control.AppStatus) error {
	for _, bus := range appBuses(a) {
		jobs, err := c.Plan(ctx, bus)
		if err != nil {
			return err
		}
		var mine []control.PlannedJob
		for _, j := range jobs {
			if j.App == a.ID {
				mine = append(mine, j)
			}
		}
		if len(mine) == 0 {
			fmt.Fprintf(w, "If the %s bus restarted now:\n  %s is not on it: busmedic would not touch it\n", bus, a.ID)
			continue
		}
		if err := control.WritePlanText(w, bus, mine); err != nil {
			return err
		}
	}
	return nil
}
