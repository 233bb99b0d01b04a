package main

import (
	"context"
	"flag"
	"os"

	"busmedic/autostart"
	"busmedic/cmd/busmedic/internal/cli"
)

// autostartFlags are the flags of "busmedic autostart", before or after
// its command.
func autostartFlags(fs *flag.FlagSet) {
	fs.Bool("systemd", false, "use a systemd user unit (the default when a systemd user manager runs)")
	fs.Bool("desktop-file", false, "use an XDG autostart entry (the default without a systemd user manager)")
	fs.String("target", "graphical-session.target", "with --systemd: the target that starts busmedic (default.target for desktops that never reach graphical-session.target)")
}

// runAutostart is "busmedic autostart enable|disable|status": busmedic only
// helps if it already runs when the bus restarts, so it starts with the
// session, through an XDG autostart entry or a systemd user unit.
func runAutostart(ctx context.Context, in *cli.Call) int {
	if in.On("systemd") && in.On("desktop-file") {
		return in.UsageError("--systemd or --desktop-file, not both")
	}
	paths, err := autostart.PathsFrom(os.Getenv)
	if err != nil {
		return in.Failf("%v", err)
	}
	systemd := paths.Systemd
	switch {
	case in.On("systemd"):
		systemd = true
	case in.On("desktop-file"):
		systemd = false
	}
	switch in.Cmd().Name {
	case "enable":
		err = autostart.Enable(ctx, paths, systemd, in.Str("target"), in.Stdout, in.Stderr)
	case "disable":
		err = autostart.Disable(ctx, paths, in.Stdout)
	case "status":
		err = autostart.Status(ctx, paths, in.Stdout)
	}
	if err != nil {
		return in.Failf("%v", err)
	}
	return exitOK
}
