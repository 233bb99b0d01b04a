package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"busmedic/appdb"
	"busmedic/cmd/busmedic/internal/cli"
	"busmedic/tray"
)

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

func rulesList(ctx context.Context, in *cli.Call) int {
	paths := appdb.DefaultPaths(in.Str("config"))
	set, err := appdb.Load(paths)
	if err != nil {
		printProblems(in.Stderr, err)
		return exitError
	}
	printProblems(in.Stderr, set.Warnings())
	rules := set.Rules()
	switch {
	case in.On("json"):
		if err := appdb.WriteJSON(in.Stdout, rules); err != nil {
			return in.Failf("%v", err)
		}
	case len(rules) == 0:
		fmt.Fprintf(in.Stdout, "no rules (add some to %s)\n", paths.User)
	default:
		if err := appdb.WriteTable(in.Stdout, rules); err != nil {
			return exitError
		}
	}
	return exitOK
}

func rulesCheck(ctx context.Context, in *cli.Call) int {
	files := in.Args
	if len(files) == 0 {
		paths := appdb.DefaultPaths(in.Str("config"))
		for _, f := range paths.Files() {
			if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
				files = append(files, f)
			}
		}
		if len(files) == 0 {
			fmt.Fprintf(in.Stdout, "no rules files (the user file would be %s)\n", paths.User)
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
		if errors.Is(err, os.ErrNotExist) {
			in.Failf("no file %s", f)
			status = exitError
			continue
		}
		if err != nil {
			printProblems(in.Stderr, err)
			status = exitError
			continue
		}
		warnings := set.Warnings()
		printProblems(in.Stderr, warnings)
		n, w := len(set.Rules()), len(warnings)
		summary := fmt.Sprintf("%s: %d rule%s OK", f, n, plural(n))
		if w > 0 {
			summary += fmt.Sprintf(" (%d warning%s)", w, plural(w))
		}
		fmt.Fprintln(in.Stdout, summary)
	}
	return status
}

func rulesAddFromPID(ctx context.Context, in *cli.Call) int {
	pid, err := strconv.Atoi(in.Args[0])
	if err != nil || pid <= 0 {
		return in.UsageError("bad PID %q", in.Args[0])
	}
	action := appdb.Action(in.Str("action"))
	switch action {
	case appdb.ActionRelaunch, appdb.ActionKeep, appdb.ActionNotify, appdb.ActionIgnore:
	default:
		return in.UsageError("--action %q: want relaunch, keep, notify or ignore (signal and hook need more keys: edit the file)", action)
	}

	// The names it owns tell the app best; the buses it is on, where
	// the rule watches.
	r, p, warnings, err := appdb.LearnPID(ctx, pid, in.Str("id"), action)
	switch {
	case errors.Is(err, appdb.ErrNoID):
		return in.Failf("%s; give the rule an id with --id ID", strings.TrimPrefix(err.Error(), appdb.ErrNoID.Error()+": "))
	case errors.Is(err, appdb.ErrCannotRelaunch):
		return in.Failf("%s, or add the rule with --action notify", strings.TrimPrefix(err.Error(), appdb.ErrCannotRelaunch.Error()+": "))
	case err != nil:
		return in.Failf("%v", err)
	case action == appdb.ActionKeep && r.Unit != "":
		return in.Failf("pid %d runs in the systemd unit %s, which systemd starts: to keep it, put \"busmedic keep --\" in front of the unit's ExecStart", pid, r.Unit)
	case action == appdb.ActionKeep && r.Bus != appdb.BusSession:
		return in.Failf("pid %d is on the %s bus: only the session bus can be kept", pid, r.Bus)
	}

	paths := appdb.DefaultPaths(in.Str("config"))
	before, _ := appdb.Load(paths) // nil if a file is broken: OpenFile says so
	f, err := appdb.OpenFile(paths.User)
	if err != nil {
		in.Failf("%s cannot be edited; fix it first:", paths.User)
		printProblems(in.Stderr, err)
		return exitError
	}
	if old, exists := f.Lookup(r.ID); exists && !in.On("replace") {
		return in.Failf("%s:%d already has a rule %q (choose another --id, or --replace it)", paths.User, old.Line, r.ID)
	}
	if err := f.AddOrReplace(r); err != nil {
		printProblems(in.Stderr, err)
		return exitError
	}
	if err := f.Save(); err != nil {
		return in.Failf("%v", err)
	}
	fmt.Fprintf(in.Stdout, "# added to %s\n%s", paths.User, appdb.FormatRule(r))

	added, _ := f.Lookup(r.ID)
	if w, ok := appdb.AlsoMatched(before, paths, r, p); ok {
		warnings = append(warnings, w)
	}
	for _, w := range warnings {
		w.File, w.Line = paths.User, added.Line
		fmt.Fprintln(in.Stderr, w.Error())
	}
	return exitOK
}

func rulesPath(ctx context.Context, in *cli.Call) int {
	paths := appdb.DefaultPaths(in.Str("config"))
	if !in.On("all") {
		fmt.Fprintln(in.Stdout, paths.User)
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
		fmt.Fprintf(in.Stdout, "%s\t%s%s\n", kind, f, state)
	}
	return exitOK
}

// rulesEdit runs the editor (without a shell) and waits for it; its exit
// status becomes ours. Ctrl-C or SIGTERM is passed on as SIGTERM.
func rulesEdit(ctx context.Context, in *cli.Call) int {
	prog, err := tray.FindEditor()
	if err != nil {
		next := "the busmedic executable"
		if self, err := os.Executable(); err == nil {
			next = filepath.Dir(self)
		}
		return in.Failf(`the editor %[1]s is not installed (looked in %[2]s and in $PATH).
Build it from the busmedic source tree; it needs cgo and the GL and X11 headers
(Debian: sudo apt-get install libgl1-mesa-dev xorg-dev):
  go build -o %[2]s/%[1]s ./cmd/%[1]s
or install it into $(go env GOPATH)/bin with: go install ./cmd/%[1]s
Without it, edit the rules file by hand: busmedic rules path`, tray.EditorProgram, next)
	}
	var argv []string
	if config := in.Str("config"); config != "" {
		argv = append(argv, "--config", config)
	}
	cmd := exec.CommandContext(ctx, prog, argv...)
	cmd.Stdout, cmd.Stderr = in.Stdout, in.Stderr
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
	return in.Failf("%s: %v", prog, err)
}
