package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"busmedic/assets"
	"busmedic/cmd/busmedic/internal/cli"
	"busmedic/daemon"
)

// keepFlags are the flags of "busmedic keep".
func keepFlags(fs *flag.FlagSet) {
	fs.String("bus", "session", "the bus to keep the app's connections to (session only)")
}

// runKeep is "busmedic keep -- COMMAND [ARGS...]": it makes sure the
// keeper runs, then becomes COMMAND (the same pid), with the keeper's
// socket as its session bus.
func runKeep(ctx context.Context, in *cli.Call) int {
	switch bus := in.Str("bus"); bus {
	case "session":
	case "system":
		return in.Failf("only the session bus can be kept: the system bus's policy decides by the connecting process's uid and pid, which the keeper would hide (the bus would see the keeper)")
	default:
		return in.UsageError("no bus %q (want session)", bus)
	}
	path, err := exec.LookPath(in.Args[0])
	if err != nil {
		return in.Failf("%v", err)
	}
	self, err := assets.Executable()
	if err != nil {
		return in.Failf("%v", err)
	}
	env, err := daemon.KeepEnv(ctx, self, os.Environ())
	if err != nil {
		return in.Failf("%v", err)
	}
	// The app takes this process's place: whoever started "busmedic keep"
	// (the engine, a desktop file, a shell) knows the app by this pid.
	err = syscall.Exec(path, in.Args, env)
	return in.Failf("%s: %v", in.Args[0], err)
}

// runKeeper is the hidden "busmedic keeper": the keeper's process, which
// "busmedic keep" starts (daemon.RunKeeperCommand).
func runKeeper(ctx context.Context, args []string, stderr io.Writer) int {
	// Only SIGTERM and SIGINT end the keeper: a hangup (main stops on
	// SIGHUP) must not take the kept apps' connections with it.
	signal.Ignore(syscall.SIGHUP)
	err := daemon.RunKeeperCommand(ctx, args, stderr)
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "busmedic %s: %v\n", daemon.KeeperCommand, err)
	if errors.Is(err, daemon.ErrKeeperUsage) {
		return exitUsage
	}
	return exitError
}
