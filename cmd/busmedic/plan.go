package main

import (
	"context"

	"busmedic/cmd/busmedic/internal/cli"
	"busmedic/relaunch/control"
)

// runRelaunchDryRun is "busmedic relaunch --dry-run ID": what a relaunch
// would do, and what a restart of the app's bus would do for it now.
func runRelaunchDryRun(ctx context.Context, in *cli.Call) int {
	return withDaemon(ctx, in, func(ctx context.Context, c *control.Client) error {
		return c.WriteRelaunchDryRun(ctx, in.Stdout, in.Args[0])
	})
}

// runPlan is "busmedic plan [ID]": what a restart of each bus, or of the
// app's, would do now.
func runPlan(ctx context.Context, in *cli.Call) int {
	var id string
	if len(in.Args) == 1 {
		id = in.Args[0]
	}
	return withDaemon(ctx, in, func(ctx context.Context, c *control.Client) error {
		return c.WritePlan(ctx, in.Stdout, id)
	})
}
