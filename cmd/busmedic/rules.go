package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"busmedic/appdb"
	"busmedic/tray"
)

const rulesUsage = `Usage: busmedic rules [--config FILE] COMMAND

Commands:
  list [--json]        list the rules in force, most important first
  check [FILE]         check FILE, or every rules file; exit 1 on any error
                       (warnings, such as a program others could change, do not)
  add-from-pid PID [--id ID] [--action ACTION] [--replace]
                       add a rule that relaunches the running process PID
  path [--all]         print the user rules file (--all: every file)
  edit                 open the rules editor window (the busmedic-rules program)

--config FILE (or $BUSMEDIC_CONFIG) picks another user file.
Exit status: 0 ok, 1 invalid rules or failure, 2 usage error.
`

// runRules implements "busmedic rules".
func runRules(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var config string
	top := newRulesFlags("rules", &config, stderr)
	rest, code := parseRulesFlags(top, args, -1, stdout, stderr)
	if code >= 0 {
		return code
	}
	if len(rest) == 0 {
		fmt.Fprint(stderr, rulesUsage)
		return exitUsage
	}
	sub, subArgs := rest[0], rest[1:]
	switch sub {
	case "list":
		return rulesList(subArgs, &config, stdout, stderr)
	case "check":
		return rulesCheck(subArgs, &config, stdout, stderr)
	case "add-from-pid":
		return rulesAddFromPID(subArgs, &config, stdout, stderr)
	case "path":
		return rulesPath(subArgs, &config, stdout, stderr)
	case "edit":
		return rulesEdit(ctx, subArgs, &config, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, rulesUsage)
		return exitOK
	}
	fmt.Fprintf(stderr, "busmedic rules: unknown command %q\n\n%s", sub, rulesUsage)
	return exitUsage
}

func newRulesFlags(name string, config *string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(config, "config", *config, "user rules `FILE` (default $"+appdb.EnvConfig+" or $XDG_CONFIG_HOME/busmedic/apps.toml)")
	fs.Usage = func() { fmt.Fprint(fs.Output(), rulesUsage) }
	return fs
}

// parseRulesFlags parses flags that may come before, between or after the
// positional arguments, which it returns. For the top-level flag set it stops
// at the first positional argument (the command). More than most positional
// arguments is a usage error; most < 0 takes any. code is -1 to go on, or the
// exit status.
func parseRulesFlags(fs *flag.FlagSet, args []string, most int, stdout, stderr io.Writer) (positional []string, code int) {
	defer func() {
		if code < 0 && most >= 0 && len(positional) > most {
			fmt.Fprintf(stderr, "busmedic %s: unexpected argument %q\n", fs.Name(), positional[most])
			positional, code = nil, exitUsage
		}
	}()
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fs.SetOutput(stdout)
				fs.Usage()
				return nil, exitOK
			}
			return nil, exitUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, -1
		}
		if fs.Name() == "rules" {
			return args, -1
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// printProblems writes every error or warning, one per line.
func printProblems(w io.Writer, err error) {
	var es appdb.Errors
	if errors.As(err, &es) {
		for _, e := range es {
			fmt.Fprintln(w, e.Error())
		}
		return
	}
	fmt.Fprintln(w, err)
}

func rulesList(args []string, config *string, stdout, stderr io.Writer) int {
	fs := newRulesFlags("rules list", config, stderr)
	asJSON := fs.Bool("json", false, "print a JSON array")
	_, code := parseRulesFlags(fs, args, 0, stdout, stderr)
	if code >= 0 {
		return code
	}
	set, err := appdb.Load(appdb.DefaultPaths(*config))
	if err != nil {
		printProblems(stderr, err)
		return exitError
	}
	printProblems(stderr, set.Warnings())
	rules := set.Rules()
	if *asJSON {
		if err := appdb.WriteJSON(stdout, rules); err != nil {
			fmt.Fprintln(stderr, "busmedic rules list:", err)
			return exitError
		}
		return exitOK
	}
	if len(rules) == 0 {
		fmt.Fprintf(stdout, "no rules (add some to %s)\n", appdb.DefaultPaths(*config).User)
		return exitOK
	}
	if err := appdb.WriteTable(stdout, rules); err != nil {
		return exitError
	}
	return exitOK
}

func rulesCheck(args []string, config *string, stdout, stderr io.Writer) int {
	fs := newRulesFlags("rules check", config, stderr)
	pos, code := parseRulesFlags(fs, args, 1, stdout, stderr)
	if code >= 0 {
		return code
	}
	var files []string
	if len(pos) == 1 {
		files = pos
	} else {
		for _, f := range appdb.DefaultPaths(*config).Files() {
			if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
				files = append(files, f)
			}
		}
		if len(files) == 0 {
			fmt.Fprintf(stdout, "no rules files (the user file would be %s)\n", appdb.DefaultPaths(*config).User)
			return exitOK
		}
	}
	plural := func(n int) string {
		if n == 1 {
			return ""
		}
		return "s"
	}
	status := exitOK
	for _, f := range files {
		set, err := appdb.CheckFile(f)
		if err != nil {
			printProblems(stderr, err)
			status = exitError
			continue
		}
		warnings := set.Warnings()
		printProblems(stderr, warnings)
		n, w := len(set.Rules()), len(warnings)
		summary := fmt.Sprintf("%s: %d rule%s OK", f, n, plural(n))
		if w > 0 {
			summary += fmt.Sprintf(" (%d warning%s)", w, plural(w))
		}
		fmt.Fprintln(stdout, summary)
	}
	return status
}

func rulesAddFromPID(args []string, config *string, stdout, stderr io.Writer) int {
	fs := newRulesFlags("rules add-from-pid", config, stderr)
	id := fs.String("id", "", "rule `ID` (default: from the program's name)")
	action := fs.String("action", string(appdb.ActionRelaunch), "`ACTION`: relaunch, notify or ignore")
	replace := fs.Bool("replace", false, "replace an existing rule with the same id")
	pos, code := parseRulesFlags(fs, args, -1, stdout, stderr)
	if code >= 0 {
		return code
	}
	if len(pos) != 1 {
		fmt.Fprint(stderr, "busmedic rules add-from-pid: want one PID\n\n", rulesUsage)
		return exitUsage
	}
	pid, err := strconv.Atoi(pos[0])
	if err != nil || pid <= 0 {
		fmt.Fprintf(stderr, "busmedic rules add-from-pid: bad PID %q\n", pos[0])
		return exitUsage
	}
	switch appdb.Action(*action) {
	case appdb.ActionRelaunch, appdb.ActionNotify, appdb.ActionIgnore:
	default:
		fmt.Fprintf(stderr, "busmedic rules add-from-pid: --action %q: want relaunch, notify or ignore (signal and hook need more keys: edit the file)\n", *action)
		return exitUsage
	}

	r, err := appdb.FromProcess(pid)
	if err != nil {
		fmt.Fprintf(stderr, "busmedic rules add-from-pid: %v\n", err)
		return exitError
	}
	if *id != "" {
		r.ID = *id
	}
	r.Action = appdb.Action(*action)

	path := appdb.DefaultPaths(*config).User
	f, err := appdb.OpenFile(path)
	if err != nil {
		fmt.Fprintf(stderr, "busmedic rules add-from-pid: %s cannot be edited; fix it first:\n", path)
		printProblems(stderr, err)
		return exitError
	}
	if old, exists := f.Lookup(r.ID); exists && !*replace {
		fmt.Fprintf(stderr, "busmedic rules add-from-pid: %s:%d already has a rule %q (choose another --id, or --replace it)\n",
			path, old.Line, r.ID)
		return exitError
	}
	if err := f.AddOrReplace(r); err != nil {
		printProblems(stderr, err)
		return exitError
	}
	if err := f.Save(); err != nil {
		fmt.Fprintf(stderr, "busmedic rules add-from-pid: %v\n", err)
		return exitError
	}
	fmt.Fprintf(stdout, "# added to %s\n%s", path, appdb.FormatRule(r))
	return exitOK
}

func rulesPath(args []string, config *string, stdout, stderr io.Writer) int {
	fs := newRulesFlags("rules path", config, stderr)
	all := fs.Bool("all", false, "print every rules file, most important first")
	_, code := parseRulesFlags(fs, args, 0, stdout, stderr)
	if code >= 0 {
		return code
	}
	paths := appdb.DefaultPaths(*config)
	if !*all {
		fmt.Fprintln(stdout, paths.User)
		return exitOK
	}
	for i, f := range paths.Files() {
		kind := "system"
		if i == 0 {
			kind = "user"
		}
		state := ""
		if _, err := os.Stat(f); errors.Is(err, os.ErrNotExist) {
			state = " (not present)"
		}
		fmt.Fprintf(stdout, "%s\t%s%s\n", kind, f, state)
	}
	return exitOK
}

// rulesEdit runs the editor (without a shell) and waits for it; its exit
// status becomes ours. Ctrl-C or SIGTERM is passed on as SIGTERM.
func rulesEdit(ctx context.Context, args []string, config *string, stdout, stderr io.Writer) int {
	fs := newRulesFlags("rules edit", config, stderr)
	_, code := parseRulesFlags(fs, args, 0, stdout, stderr)
	if code >= 0 {
		return code
	}
	prog, err := tray.FindEditor()
	if err != nil {
		next := "the busmedic executable"
		if self, err := os.Executable(); err == nil {
			next = filepath.Dir(self)
		}
		fmt.Fprintf(stderr, `busmedic rules edit: the editor %[1]s is not installed (looked in %[2]s and in $PATH).
Build it from the busmedic source tree; it needs cgo and the GL and X11 headers
(Debian: sudo apt-get install libgl1-mesa-dev xorg-dev):
  go build -o %[2]s/%[1]s ./cmd/%[1]s
or install it into $(go env GOPATH)/bin with: go install ./cmd/%[1]s
Without it, edit the rules file by hand: busmedic rules path
`, tray.EditorProgram, next)
		return exitError
	}
	var argv []string
	if *config != "" {
		argv = append(argv, "--config", *config)
	}
	cmd := exec.CommandContext(ctx, prog, argv...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	// The window may ask about unsaved changes; give it a moment, then kill.
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &exitErr) && exitErr.ExitCode() > 0:
		return exitErr.ExitCode()
	case ctx.Err() != nil:
		return exitOK // interrupted, as "watch" on Ctrl-C
	}
	fmt.Fprintf(stderr, "busmedic rules edit: %s: %v\n", prog, err)
	return exitError
}
