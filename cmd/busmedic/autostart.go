package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"busmedic/autostart"
)

const (
	autostartUsage = "busmedic autostart enable|disable|status [--systemd | --desktop-file] [--target TARGET]"
	autostartAbout = "Starts busmedic with the session (enable), stops doing so (disable), or tells how it starts (status).\n\n" +
		"enable writes $XDG_CONFIG_HOME/autostart/busmedic.desktop, or, when a systemd user manager runs,\n" +
		"$XDG_CONFIG_HOME/systemd/user/busmedic.service, and removes the other one. The unit it enables and\n" +
		"starts at once (systemctl --user enable --now), unless a busmedic already runs outside it: then\n" +
		"the unit starts with the next session, and enable tells how to switch now.\n" +
		"disable removes the entry, and disables, stops and removes the unit (systemctl --user disable --now):\n" +
		"busmedic run by the unit stops, the apps it started keep running; busmedic run by the entry keeps\n" +
		"running until the session ends.\n" +
		"status tells which file is in place, whether the unit is enabled and active, and whether busmedic runs.\n" +
		"Without a user manager, the unit is only written and the systemctl line to run is printed.\n\n" +
		"Exit status: 0 done, 1 failed, 2 wrong command line."
)

// runAutostart is "busmedic autostart enable|disable|status": busmedic only
// helps if it already runs when the bus restarts, so it starts with the
// session, through an XDG autostart entry or a systemd user unit.
func runAutostart(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("autostart", flag.ContinueOnError)
	fs.SetOutput(stderr)
	useSystemd := fs.Bool("systemd", false, "use a systemd user unit (the default when a systemd user manager runs)")
	useDesktop := fs.Bool("desktop-file", false, "use an XDG autostart entry (the default without a systemd user manager)")
	target := fs.String("target", "graphical-session.target", "with --systemd: the target that starts busmedic (default.target for desktops that never reach graphical-session.target)")
	if code, ok := parseFlags(fs, args, stdout, autostartUsage, autostartAbout); !ok {
		return code
	}
	// Flags may also follow the action: "autostart enable --systemd".
	action := fs.Arg(0)
	if fs.NArg() > 0 {
		if code, ok := parseFlags(fs, fs.Args()[1:], stdout, autostartUsage, autostartAbout); !ok {
			return code
		}
	}
	if action == "" || fs.NArg() != 0 || *useSystemd && *useDesktop {
		fs.Usage()
		return exitUsage
	}
	paths, err := autostart.PathsFrom(os.Getenv)
	if err != nil {
		fmt.Fprintf(stderr, "busmedic autostart: %v\n", err)
		return exitError
	}
	systemd := paths.Systemd
	switch {
	case *useSystemd:
		systemd = true
	case *useDesktop:
		systemd = false
	}
	switch action {
	case "enable":
		err = autostart.Enable(ctx, paths, systemd, *target, stdout, stderr)
	case "disable":
		err = autostart.Disable(ctx, paths, stdout)
	case "status":
		err = autostart.Status(ctx, paths, stdout)
	default:
		fmt.Fprintf(stderr, "busmedic autostart: unknown action %q (want enable, disable or status)\n", action)
		return exitUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "busmedic autostart %s: %v\n", action, err)
		return exitError
	}
	return exitOK
}
