package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/adrg/xdg"

	"busmedic/daemon"
	"busmedic/relaunch/control"
	"busmedic/tray"
)

// runDaemon is "busmedic run": its flags make the daemon.Config, and
// daemon.Run is the daemon, until SIGTERM, SIGINT or SIGHUP (main's ctx).
// Apps it started keep running when it exits.
func runDaemon(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	config := fs.String("config", "", "user rules file (default $BUSMEDIC_CONFIG or $XDG_CONFIG_HOME/busmedic/apps.toml)")
	socket := fs.String("socket", control.DefaultPath(), "control socket")
	stateDir := fs.String("state-dir", filepath.Join(xdg.StateHome, "busmedic"), "history and app logs")
	noTray := fs.Bool("no-tray", false, "do not show the tray icon")
	manage := fs.Bool("manage-session-bus", false, "run the session bus daemon (dbus-daemon --session) at the session address, restart it on request and when it dies; for sessions started with dbus-launch or none")
	verbose := fs.Bool("v", false, "log debug detail")
	if code, ok := parseFlags(fs, args, stdout, "busmedic run [--config FILE] [--no-tray]",
		"Runs busmedic: watches the session and system bus and recovers apps after a restart."); !ok {
		return code
	}
	cfg := daemon.Config{
		RulesFile:        *config,
		Socket:           *socket,
		StateDir:         *stateDir,
		ManageSessionBus: *manage,
		Editor:           tray.FindEditor,
		Log:              newLogger(stderr, slog.LevelInfo, *verbose),
	}
	if !*noTray {
		self, err := os.Executable()
		if err != nil {
			fmt.Fprintf(stderr, "busmedic run: %v\n", err)
			return exitError
		}
		cfg.Tray = func(socket string) *exec.Cmd {
			cmd := exec.Command(self, "tray", "--socket", socket)
			cmd.Stderr = stderr
			return cmd
		}
	}
	switch err := daemon.Run(ctx, cfg); {
	case err == nil:
		return exitOK
	case errors.Is(err, daemon.ErrControlSocket): // Run said it in its log
		return exitError
	default:
		fmt.Fprintf(stderr, "busmedic run: %v\n", err)
		return exitError
	}
}
