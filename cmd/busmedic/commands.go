package main

import (
	"context"
	"flag"

	"busmedic/appdb"
	"busmedic/relaunch/control"
)

// topLevel is busmedic's command line: every command, its subcommands,
// flags and help texts.
func topLevel() *command {
	return &command{
		name: "busmedic", usage: "busmedic [--config FILE] COMMAND [ARGUMENTS]",
		about: "busmedic keeps a desktop session usable when a D-Bus bus restarts.\n\n" +
			"Exit status: 0 success, 1 the command failed, 2 the command line is wrong,\n" +
			"3 (busmedic status) busmedic is not running.",
		flags: func(fs *flag.FlagSet) {
			fs.String("config", "", "user rules `FILE` for run and rules (default $"+appdb.EnvConfig+" or $XDG_CONFIG_HOME/busmedic/apps.toml)")
			fs.Bool("version", false, "print busmedic's version, as busmedic version")
			fs.Bool("V", false, "the same as --version")
		},
		run: runTop,
		subs: []*command{{
			name: "run", summary: "run busmedic: watch both buses and recover apps after a restart",
			usage: "busmedic run [--config FILE] [--no-tray]",
			about: "Runs busmedic: watches the session and system bus and recovers apps after a restart.",
			flags: daemonFlags, run: runDaemon,
		}, {
			name: "status", summary: "show the buses, the apps and who fell off the bus",
			usage: "busmedic status [--json]",
			about: "Shows the buses, the apps with their last recovery, and who fell off the bus.\n\n" +
				"Exit status: 0 busmedic runs, 1 the daemon did not answer, 2 wrong command line,\n" +
				"3 busmedic is not running.",
			flags: clientFlags(func(fs *flag.FlagSet) { fs.Bool("json", false, "print the status as JSON") }),
			run:   runStatus,
		}, {
			name: "history", summary: "show recent bus restarts and what was done",
			usage: "busmedic history [--json] [-n N]",
			about: "Shows the recent bus restarts and what busmedic did for each app.",
			flags: clientFlags(func(fs *flag.FlagSet) {
				fs.Bool("json", false, "print the history as JSON")
				fs.Int("n", 10, "how many recoveries to show, newest first (0: all kept)")
			}),
			run: runHistory,
		}, {
			name: "relaunch", summary: "recover an app now: relaunch ID", usage: "busmedic relaunch [--force | --dry-run] ID",
			about: "Recovers an app now: a rule's id, or a casualty's id from busmedic status.\n" +
				"An app that is running on its bus is stopped and started again: that takes --force.",
			flags: clientFlags(func(fs *flag.FlagSet) {
				fs.Bool("force", false, "relaunch the app even if it is running: stop it and start it again")
				fs.Bool("dry-run", false, "relaunch nothing; print what a restart of its bus would do for it now")
			}),
			minArgs: 1, maxArgs: 1, interleave: true, run: runRelaunch, argKind: argApp,
		}, {
			name: "plan", summary: "print what a bus restart would do now: plan [ID]", usage: "busmedic plan [ID]",
			about: "Prints what busmedic would do for each app, or for the app ID, if its bus restarted now:\n" +
				"which processes it matches and what it would start. Nothing is restarted.",
			flags: clientFlags(nil), maxArgs: 1, interleave: true, run: runPlan, argKind: argApp,
		}, {
			name: "restart-bus", summary: "restart the session bus and recover the apps",
			usage: "busmedic restart-bus [session|system]",
			about: "Restarts the session bus (through systemd, or the bus daemon busmedic manages), or the system bus\n" +
				"(through systemd, with your authorisation), and recovers the apps.",
			flags: clientFlags(nil), maxArgs: 1, run: runRestartBus, argWords: []string{"session", "system"},
		}, {
			name: "pause", summary: "pause recovery until resume", usage: "busmedic pause",
			about: "Pauses recovery: after a restart, no app is touched until busmedic resume.",
			flags: clientFlags(nil), run: request(func(ctx context.Context, c *control.Client) error { return c.Pause(ctx) }),
		}, {
			name: "resume", summary: "resume recovery", usage: "busmedic resume",
			about: "Resumes recovery after busmedic pause.",
			flags: clientFlags(nil), run: request(func(ctx context.Context, c *control.Client) error { return c.Resume(ctx) }),
		}, {
			name: "reload", summary: "make the daemon re-read the rules now", usage: "busmedic reload",
			about: "Makes the daemon re-read the rules files now.",
			flags: clientFlags(nil), run: request(func(ctx context.Context, c *control.Client) error { return c.Reload(ctx) }),
		}, {
			name: "tray", summary: "run the tray icon (busmedic run starts it)", usage: "busmedic tray [--socket PATH]",
			about: "Shows busmedic's icon and menu in the panel (StatusNotifierItem) until Quit.\n" +
				"busmedic run starts it by itself; exit status 3 means the session bus went away.",
			flags: clientFlags(func(fs *flag.FlagSet) { fs.Bool("v", false, "log debug messages") }), run: runTray,
		}, {
			name: "keep", summary: "run an app whose bus connections live through bus restarts: keep -- COMMAND",
			usage: "busmedic keep [--bus session] -- COMMAND [ARGS...]",
			about: "Runs COMMAND (found in PATH, no shell) in place of this process, with busmedic's keeper as its\n" +
				"session bus: the keeper holds the app's connections while the bus restarts, and replays what the\n" +
				"app had asked of the bus (its names, its matches) when the bus is back. The keeper starts with the\n" +
				"first kept app and runs until the session ends. Session bus only: the system bus's policy decides\n" +
				"by the connecting process, which the keeper would hide.",
			flags: keepFlags, minArgs: 1, maxArgs: 1 << 16, run: runKeep,
		}, {
			name: "watch", summary: "stream bus events (up, down, restarted, peers) until interrupted",
			usage: "busmedic watch [--bus session|system|ADDRESS]... [--json]",
			about: "Streams the events of the buses until interrupted (Ctrl-C exits 0).",
			flags: watchFlags, run: runWatch,
		}, {
			name: "rules", summary: "list, check, add and edit relaunch rules",
			usage: "busmedic rules [--config FILE] COMMAND",
			about: "Lists, checks, adds and edits the relaunch rules.\n\n" +
				"--config FILE (or $" + appdb.EnvConfig + ") picks another user file.\n" +
				"Exit status: 0 ok, 1 invalid rules or failure, 2 usage error.",
			flags: func(fs *flag.FlagSet) {
				fs.String("config", "", "user rules `FILE` (default $"+appdb.EnvConfig+" or $XDG_CONFIG_HOME/busmedic/apps.toml)")
			},
			subs: []*command{{
				name: "list", summary: "list the rules in force, most important first",
				usage: "busmedic rules list [--json]",
				about: "Lists the rules in force, most important first, with the file and line of each.",
				flags: func(fs *flag.FlagSet) { fs.Bool("json", false, "print a JSON array") }, run: rulesList,
			}, {
				name: "check", summary: "check FILE, or every rules file; exit 1 on any error",
				usage: "busmedic rules check [FILE]",
				about: "Checks FILE, or every rules file; exits 1 on any error\n" +
					"(warnings, such as a program others could change, do not).",
				maxArgs: 1, interleave: true, run: rulesCheck, argKind: argFile,
			}, {
				name: "add-from-pid", summary: "add a rule that relaunches the running process PID",
				usage: "busmedic rules add-from-pid PID [--id ID] [--action ACTION] [--replace]",
				about: "Adds to the user rules file a rule that relaunches the running process PID as it was started,\n" +
					"matched by the bus names it owns on the session or system bus, else by its program. Warns on\n" +
					"stderr when the rule may not work as meant (no bus, a temporary script, another rule matches\n" +
					"the process), and refuses one that cannot (a script read from a file descriptor: bash /dev/fd/3).",
				flags: func(fs *flag.FlagSet) {
					fs.String("id", "", "rule `ID` (default: from the program's name)")
					fs.String("action", string(appdb.ActionRelaunch), "`ACTION`: relaunch, notify or ignore")
					fs.Bool("replace", false, "replace an existing rule with the same id")
				},
				minArgs: 1, maxArgs: 1, interleave: true, run: rulesAddFromPID,
			}, {
				name: "path", summary: "print the user rules file (--all: every file)", usage: "busmedic rules path [--all]",
				about: "Prints the user rules file, or with --all every rules file, most important first.",
				flags: func(fs *flag.FlagSet) { fs.Bool("all", false, "print every rules file, most important first") },
				run:   rulesPath,
			}, {
				name: "edit", summary: "open the rules editor window (the busmedic-rules program)",
				usage: "busmedic rules edit",
				about: "Opens the rules editor window (the busmedic-rules program) and waits for it to close.",
				run:   rulesEdit,
			}, helpCommand("busmedic rules")},
		}, {
			name: "autostart", summary: "start busmedic with the session: autostart enable|disable|status",
			usage: "busmedic autostart enable|disable|status [--systemd | --desktop-file] [--target TARGET]",
			about: "Starts busmedic with the session (enable), stops doing so (disable), or tells how it starts (status).\n\n" +
				"Exit status: 0 done, 1 failed, 2 wrong command line.",
			flags: autostartFlags,
			subs: []*command{{
				name: "enable", summary: "start busmedic with the session",
				usage: "busmedic autostart enable [--systemd | --desktop-file] [--target TARGET]",
				about: "Writes $XDG_CONFIG_HOME/autostart/busmedic.desktop, or, when a systemd user manager runs,\n" +
					"$XDG_CONFIG_HOME/systemd/user/busmedic.service, and removes the other one. The unit it enables and\n" +
					"starts at once (systemctl --user enable --now), unless a busmedic already runs outside it: then\n" +
					"the unit starts with the next session, and enable tells how to switch now.\n" +
					"Without a user manager, the unit is only written and the systemctl line to run is printed.",
				run: runAutostart,
			}, {
				name: "disable", summary: "stop starting busmedic with the session", usage: "busmedic autostart disable",
				about: "Removes the entry, and disables, stops and removes the unit (systemctl --user disable --now):\n" +
					"busmedic run by the unit stops, the apps it started keep running; busmedic run by the entry keeps\n" +
					"running until the session ends.",
				run: runAutostart,
			}, {
				name: "status", summary: "tell how busmedic starts with the session", usage: "busmedic autostart status",
				about: "Tells which file is in place, whether the unit is enabled and active, and whether busmedic runs.",
				run:   runAutostart,
			}, helpCommand("busmedic autostart")},
		}, {
			name: "version", summary: "print busmedic's version", usage: "busmedic version",
			about: "Prints busmedic's version, the commit it was built from and the Go version.",
			run:   runVersion,
		}, {
			name: "completion", summary: "print the shell completion script: completion bash|zsh|fish",
			usage: "busmedic completion bash|zsh|fish",
			about: "Prints the completion script of bash, zsh or fish, which completes the commands, their flags,\n" +
				"the rules' ids and the ids of the apps that fell off the bus. Packages install the scripts where\n" +
				"each shell looks; to try one: source <(busmedic completion bash).",
			minArgs: 1, maxArgs: 1, run: runCompletion, argWords: []string{"bash", "zsh", "fish"},
		}, helpCommand("busmedic")},
	}
}

// helpCommand is the help subcommand of parent.
func helpCommand(parent string) *command {
	return &command{
		name: "help", summary: "list the commands, or describe one: help COMMAND",
		usage:   parent + " help [COMMAND [SUBCOMMAND]]",
		about:   "Lists the commands, or describes one: the same as " + parent + " COMMAND -h.",
		maxArgs: 2, run: runHelp, argKind: argCommand,
	}
}
