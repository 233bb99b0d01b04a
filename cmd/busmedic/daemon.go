package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/adrg/xdg"

	"busmedic/cmd/busmedic/internal/cli"
	"busmedic/daemon"
	"busmedic/relaunch/control"
	"busmedic/tray"
)

// daemonFlags are the flags of "busmedic run", which make the daemon.Config.
func daemonFlags(fs *flag.FlagSet) {
	fs.String("config", "", "user rules file (default $BUSMEDIC_CONFIG or $XDG_CONFIG_HOME/busmedic/apps.toml)")
	fs.String("socket", control.DefaultPath(), "control socket")
	fs.String("state-dir", filepath.Join(xdg.StateHome, "busmedic"), "history and app logs")
	fs.Bool("no-tray", false, "do not show the tray icon")
	fs.Bool("manage-session-bus", false, "run the session bus daemon (dbus-daemon --session) at the session address, restart it on request and when it dies; for sessions started with dbus-launch or none")
	fs.Bool("v", false, "log debug detail")
}

// runDaemon is "busmedic run": its flags make the daemon.Config, and
// daemon.Run is the daemon, until SIGTERM, SIGINT or SIGHUP (main's ctx).
// Apps it started keep running when it exits.
func runDaemon(ctx context.Context, in *cli.Call) int {
	cfg := daemon.Config{
		RulesFile:        in.Str("config"),
		Socket:           in.Str("socket"),
		StateDir:         in.Str("state-dir"),
		ManageSessionBus: in.On("manage-session-bus"),
		Editor:           tray.FindEditor,
		Log:              logger(in, slog.LevelInfo),
	}
	if !in.On("no-tray") {
		self, err := os.Executable()
		if err != nil {
			return in.Failf("%v", err)
		}
		cfg.Tray = func(socket string) *exec.Cmd {
			cmd := exec.Command(self, "tray", "--socket", socket)
			// Its "Edit rules…" edits the file this daemon reads.
			cmd.Env = daemon.EditorEnv(os.Environ(), in.Str("config"))
			cmd.Stderr = in.Stderr
			return cmd
		}
	}
	switch err := daemon.Run(ctx, cfg); {
	case err == nil:
		return exitOK
	case errors.Is(err, daemon.ErrControlSocket): // Run said it in its log
		return exitError
	default:
		return in.Failf("%v", err)
	}
}
