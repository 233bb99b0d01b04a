package main

import (
	"context"
	"flag"

	"busmedic/appdb"
	"busmedic/cmd/busmedic/internal/cli"
	"busmedic/relaunch/control"
)

// program is busmedic's command line as package cli parses and completes
// it: the table of commands, the top level's --config that passes to the
// commands that read the rules, and the flag values completion offers.
func program() *cli.Program {
	return &cli.Program{
		Top:    topLevel(),
		Passed: []string{"config"},
		FlagWords: map[string][]string{
			"action": {string(appdb.ActionRelaunch), string(appdb.ActionKeep), string(appdb.ActionNotify), string(appdb.ActionIgnore)},
			"bus":    {"session", "system"},
			"target": {"graphical-session.target", "default.target"},
		},
		FileFlags: map[string]bool{"config": true, "socket": true, "state-dir": true},
	}
}

// topLevel is busmedic's command line: every command, its subcommands,
// flags and help texts.
func topLevel() *cli.Command {
	return &cli.Command{
		Name: "busmedic", Usage: "busmedic [--config FILE] COMMAND [ARGUMENTS]",
		About: "busmedic keeps a desktop session usable when a D-Bus bus restarts.\n\n" +
			"Exit status: 0 success, 1 the command failed, 2 the command line is wrong,\n" +
			"3 (busmedic status) busmedic is not running.",
		Flags: func(fs *flag.FlagSet) {
			fs.String("config", "", "user rules `FILE` for run and rules (default $"+appdb.EnvConfig+" or $XDG_CONFIG_HOME/busmedic/apps.toml)")
			fs.Bool("version", false, "print busmedic's version, as busmedic version")
			fs.Bool("V", false, "the same as --version")
		},
		Run: runTop,
		Subs: []*cli.Command{{
			Name: "run", Summary: "run busmedic: watch both buses and recover apps after a restart",
			Usage: "busmedic run [--config FILE] [--no-tray]",
			About: "Runs busmedic: watches the session and system bus and recovers apps after a restart.",
			Flags: daemonFlags, Run: runDaemon,
		}, {
			Name: "status", Summary: "show the buses, the apps and who fell off the bus",
			Usage: "busmedic status [--json] [--follow]",
			About: "Shows the buses, the apps with their last recovery, and who fell off the bus.\n" +
				"With --follow, shows it again at each change, and waits for busmedic while it is not running,\n" +
				"until interrupted (Ctrl-C exits 0).\n\n" +
				"Exit status: 0 busmedic runs, 1 the daemon did not answer, 2 wrong command line,\n" +
				"3 busmedic is not running.",
			Flags: clientFlags(func(fs *flag.FlagSet) {
				fs.Bool("json", false, "print the status as JSON (with --follow, one status a line)")
				fs.Bool("follow", false, "show the status again at each change, until interrupted")
			}),
			Run: runStatus,
		}, {
			Name: "history", Summary: "show recent bus restarts and what was done",
			Usage: "busmedic history [--json] [-n N]",
			About: "Shows the recent bus restarts and what busmedic did for each app.",
			Flags: clientFlags(func(fs *flag.FlagSet) {
				fs.Bool("json", false, "print the history as JSON")
				fs.Int("n", 10, "how many recoveries to show, newest first (0: all kept)")
			}),
			Run: runHistory,
		}, {
			Name: "relaunch", Summary: "recover an app now: relaunch ID", Usage: "busmedic relaunch [--force | --dry-run] ID",
			About: "Recovers an app now: a rule's id, or a casualty's id from busmedic status.\n" +
				"An app that is running on its bus is stopped and started again: that takes --force.",
			Flags: clientFlags(func(fs *flag.FlagSet) {
				fs.Bool("force", false, "relaunch the app even if it is running: stop it and start it again")
				fs.Bool("dry-run", false, "relaunch nothing; print what a restart of its bus would do for it now")
			}),
			MinArgs: 1, MaxArgs: 1, Interleave: true, Run: runRelaunch, ArgComplete: appIDs,
		}, {
			Name: "plan", Summary: "print what a bus restart would do now: plan [ID]", Usage: "busmedic plan [ID]",
			About: "Prints what busmedic would do for each app, or for the app ID, if its bus restarted now:\n" +
				"which processes it matches and what it would start. Nothing is restarted.",
			Flags: clientFlags(nil), MaxArgs: 1, Interleave: true, Run: runPlan, ArgComplete: appIDs,
		}, {
			Name: "restart-bus", Summary: "restart the session bus and recover the apps",
			Usage: "busmedic restart-bus [session|system]",
			About: "Restarts the session bus (through systemd, or the bus daemon busmedic manages), or the system bus\n" +
				"(through systemd, with your authorisation), and recovers the apps.",
			Flags: clientFlags(nil), MaxArgs: 1, Run: runRestartBus, ArgWords: []string{"session", "system"},
		}, {
			Name: "pause", Summary: "pause recovery until resume", Usage: "busmedic pause",
			About: "Pauses recovery: after a restart, no app is touched until busmedic resume.",
			Flags: clientFlags(nil), Run: request(func(ctx context.Context, c *control.Client) error { return c.Pause(ctx) }),
		}, {
			Name: "resume", Summary: "resume recovery", Usage: "busmedic resume",
			About: "Resumes recovery after busmedic pause, and recovers the apps that the pause held back\n" +
				"(if their bus has not restarted again since).",
			Flags: clientFlags(nil), Run: request(func(ctx context.Context, c *control.Client) error { return c.Resume(ctx) }),
		}, {
			Name: "reload", Summary: "make the daemon re-read the rules now", Usage: "busmedic reload",
			About: "Makes the daemon re-read the rules files now.",
			Flags: clientFlags(nil), Run: request(func(ctx context.Context, c *control.Client) error { return c.Reload(ctx) }),
		}, {
			Name: "tray", Summary: "run the tray icon (busmedic run starts it)", Usage: "busmedic tray [--socket PATH]",
			About: "Shows busmedic's icon and menu in the panel (StatusNotifierItem) until Quit.\n" +
				"busmedic run starts it by itself; exit status 3 means the session bus went away.",
			Flags: clientFlags(func(fs *flag.FlagSet) { fs.Bool("v", false, "log debug messages") }), Run: runTray,
		}, {
			Name: "keep", Summary: "run an app whose bus connections live through bus restarts: keep -- COMMAND",
			Usage: "busmedic keep [--bus session] -- COMMAND [ARGS...]",
			About: "Runs COMMAND (found in PATH, no shell) in place of this process, with busmedic's keeper as its\n" +
				"session bus: the keeper holds the app's connections while the bus restarts, and replays what the\n" +
				"app had asked of the bus (its names, its matches) when the bus is back. The keeper starts with the\n" +
				"first kept app and runs until the session ends. Session bus only: the system bus's policy decides\n" +
				"by the connecting process, which the keeper would hide.",
			Flags: keepFlags, MinArgs: 1, MaxArgs: 1 << 16, Run: runKeep,
		}, {
			Name: "watch", Summary: "stream bus events (up, down, restarted, peers) until interrupted",
			Usage: "busmedic watch [--bus session|system|ADDRESS]... [--json]",
			About: "Streams the events of the buses until interrupted (Ctrl-C exits 0).",
			Flags: watchFlags, Run: runWatch,
		}, {
			Name: "rules", Summary: "list, check, add and edit relaunch rules",
			Usage: "busmedic rules [--config FILE] COMMAND",
			About: "Lists, checks, adds and edits the relaunch rules.\n\n" +
				"--config FILE (or $" + appdb.EnvConfig + ") picks another user file.\n" +
				"Exit status: 0 ok, 1 invalid rules or failure, 2 usage error.",
			Flags: func(fs *flag.FlagSet) {
				fs.String("config", "", "user rules `FILE` (default $"+appdb.EnvConfig+" or $XDG_CONFIG_HOME/busmedic/apps.toml)")
			},
			Subs: []*cli.Command{{
				Name: "list", Summary: "list the rules in force, most important first",
				Usage: "busmedic rules list [--json]",
				About: "Lists the rules in force, most important first, with the file and line of each.",
				Flags: func(fs *flag.FlagSet) { fs.Bool("json", false, "print a JSON array") }, Run: rulesList,
			}, {
				Name: "check", Summary: "check FILE, or every rules file; exit 1 on any error",
				Usage: "busmedic rules check [FILE]",
				About: "Checks FILE, or every rules file; exits 1 on any error\n" +
					"(warnings, such as a program others could change, do not).",
				MaxArgs: 1, Interleave: true, Run: rulesCheck, ArgFiles: true,
			}, {
				Name: "add-from-pid", Summary: "add a rule that relaunches the running process PID",
				Usage: "busmedic rules add-from-pid PID [--id ID] [--action ACTION] [--replace]",
				About: "Adds to the user rules file a rule that relaunches the running process PID as it was started,\n" +
					"matched by the bus names it owns on the session or system bus, else by its program. Warns on\n" +
					"stderr when the rule may not work as meant (no bus, a temporary script, another rule matches\n" +
					"the process, a system rule with the same id that it replaces), and refuses one that cannot (a\n" +
					"script read from a file descriptor: bash /dev/fd/3; a command line that is not UTF-8).",
				Flags: func(fs *flag.FlagSet) {
					fs.String("id", "", "rule `ID` (default: from the program's name)")
					fs.String("action", string(appdb.ActionRelaunch), "`ACTION`: relaunch, keep, notify or ignore")
					fs.Bool("replace", false, "replace an existing rule with the same id")
				},
				MinArgs: 1, MaxArgs: 1, Interleave: true, Run: rulesAddFromPID,
			}, {
				Name: "path", Summary: "print the user rules file (--all: every file)", Usage: "busmedic rules path [--all]",
				About: "Prints the user rules file, or with --all every rules file, most important first.",
				Flags: func(fs *flag.FlagSet) { fs.Bool("all", false, "print every rules file, most important first") },
				Run:   rulesPath,
			}, {
				Name: "edit", Summary: "open the rules editor window (the busmedic-rules program)",
				Usage: "busmedic rules edit",
				About: "Opens the rules editor window (the busmedic-rules program) and waits for it to close.",
				Run:   rulesEdit,
			}, cli.HelpCommand("busmedic rules")},
		}, {
			Name: "autostart", Summary: "start busmedic with the session: autostart enable|disable|status",
			Usage: "busmedic autostart enable|disable|status [--systemd | --desktop-file] [--target TARGET]",
			About: "Starts busmedic with the session (enable), stops doing so (disable), or tells how it starts (status).\n\n" +
				"Exit status: 0 done, 1 failed, 2 wrong command line.",
			Flags: autostartFlags,
			Subs: []*cli.Command{{
				Name: "enable", Summary: "start busmedic with the session",
				Usage: "busmedic autostart enable [--systemd | --desktop-file] [--target TARGET]",
				About: "Writes $XDG_CONFIG_HOME/autostart/busmedic.desktop, or, when a systemd user manager runs,\n" +
					"$XDG_CONFIG_HOME/systemd/user/busmedic.service, and removes the other one. The unit it enables and\n" +
					"starts at once (systemctl --user enable --now), unless a busmedic already runs outside it: then\n" +
					"the unit starts with the next session, and enable tells how to switch now.\n" +
					"Without a user manager, the unit is only written and the systemctl line to run is printed.",
				Run: runAutostart,
			}, {
				Name: "disable", Summary: "stop starting busmedic with the session", Usage: "busmedic autostart disable",
				About: "Removes the entry, and disables, stops and removes the unit (systemctl --user disable --now):\n" +
					"busmedic run by the unit stops, the apps it started keep running; busmedic run by the entry keeps\n" +
					"running until the session ends.",
				Run: runAutostart,
			}, {
				Name: "status", Summary: "tell how busmedic starts with the session", Usage: "busmedic autostart status",
				About: "Tells which file is in place, whether the unit is enabled and active, and whether busmedic runs.",
				Run:   runAutostart,
			}, cli.HelpCommand("busmedic autostart")},
		}, {
			Name: "version", Summary: "print busmedic's version", Usage: "busmedic version",
			About: "Prints busmedic's version, the commit it was built from and the Go version.",
			Run:   runVersion,
		}, {
			Name: "completion", Summary: "print the shell completion script: completion bash|zsh|fish",
			Usage: "busmedic completion bash|zsh|fish",
			About: "Prints the completion script of bash, zsh or fish, which completes the commands, their flags,\n" +
				"the rules' ids and the ids of the apps that fell off the bus. Packages install the scripts where\n" +
				"each shell looks; to try one: source <(busmedic completion bash).",
			MinArgs: 1, MaxArgs: 1, Run: runCompletion, ArgWords: []string{"bash", "zsh", "fish"},
		}, cli.HelpCommand("busmedic")},
	}
}
