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
	"syscall"
	"time"

	"busmedic/appdb"
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

func rulesList(ctx context.Context, in *call) int {
	paths := appdb.DefaultPaths(in.str("config"))
	set, err := appdb.Load(paths)
	if err != nil {
		printProblems(in.stderr, err)
		return exitError
	}
	printProblems(in.stderr, set.Warnings())
	rules := set.Rules()
	switch {
	case in.on("json"):
		if err := appdb.WriteJSON(in.stdout, rules); err != nil {
			return in.failf("%v", err)
		}
	case len(rules) == 0:
		fmt.Fprintf(in.stdout, "no rules (add some to %s)\n", paths.User)
	default:
		if err := appdb.WriteTable(in.stdout, rules); err != nil {
			return exitError
		}
	}
	return exitOK
}

func rulesCheck(ctx context.Context, in *call) int {
	files := in.args
	if len(files) == 0 {
		paths := appdb.DefaultPaths(in.str("config"))
		for _, f := range paths.Files() {
			if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
				files = append(files, f)
			}
		}
		if len(files) == 0 {
			fmt.Fprintf(in.stdout, "no rules files (the user file would be %s)\n", paths.User)
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
			printProblems(in.stderr, err)
			status = exitError
			continue
		}
		warnings := set.Warnings()
		printProblems(in.stderr, warnings)
		n, w := len(set.Rules()), len(warnings)
		summary := fmt.Sprintf("%s: %d rule%s OK", f, n, plural(n))
		if w > 0 {
			summary += fmt.Sprintf(" (%d warning%s)", w, plural(w))
		}
		fmt.Fprintln(in.stdout, summary)
	}
	return status
}

func rulesAddFromPID(ctx context.Context, in *call) int {
	pid, err := strconv.Atoi(in.args[0])
	if err != nil || pid <= 0 {
		return in.usageError("bad PID %q", in.args[0])
	}
	action := appdb.Action(in.str("action"))
	switch action {
	case appdb.ActionRelaunch, appdb.ActionNotify, appdb.ActionIgnore:
	default:
		return in.usageError("--action %q: want relaunch, notify or ignore (signal and hook need more keys: edit the file)", action)
	}

	r, err := appdb.FromProcess(pid)
	if err != nil {
		return in.failf("%v", err)
	}
	if id := in.str("id"); id != "" {
		r.ID = id
	}
	r.Action = action

	path := appdb.DefaultPaths(in.str("config")).User
	f, err := appdb.OpenFile(path)
	if err != nil {
		in.failf("%s cannot be edited; fix it first:", path)
		printProblems(in.stderr, err)
		return exitError
	}
	if old, exists := f.Lookup(r.ID); exists && !in.on("replace") {
		return in.failf("%s:%d already has a rule %q (choose another --id, or --replace it)", path, old.Line, r.ID)
	}
	if err := f.AddOrReplace(r); err != nil {
		printProblems(in.stderr, err)
		return exitError
	}
	if err := f.Save(); err != nil {
		return in.failf("%v", err)
	}
	fmt.Fprintf(in.stdout, "# added to %s\n%s", path, appdb.FormatRule(r))
	return exitOK
}

func rulesPath(ctx context.Context, in *call) int {
	paths := appdb.DefaultPaths(in.str("config"))
	if !in.on("all") {
		fmt.Fprintln(in.stdout, paths.User)
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
		fmt.Fprintf(in.stdout, "%s\t%s%s\n", kind, f, state)
	}
	return exitOK
}

// rulesEdit runs the editor (without a shell) and waits for it; its exit
// status becomes ours. Ctrl-C or SIGTERM is passed on as SIGTERM.
func rulesEdit(ctx context.Context, in *call) int {
	prog, err := tray.FindEditor()
	if err != nil {
		next := "the busmedic executable"
		if self, err := os.Executable(); err == nil {
			next = filepath.Dir(self)
		}
		return in.failf(`the editor %[1]s is not installed (looked in %[2]s and in $PATH).
Build it from the busmedic source tree; it needs cgo and the GL and X11 headers
(Debian: sudo apt-get install libgl1-mesa-dev xorg-dev):
  go build -o %[2]s/%[1]s ./cmd/%[1]s
or install it into $(go env GOPATH)/bin with: go install ./cmd/%[1]s
Without it, edit the rules file by hand: busmedic rules path`, tray.EditorProgram, next)
	}
	var argv []string
	if config := in.str("config"); config != "" {
		argv = append(argv, "--config", config)
	}
	cmd := exec.CommandContext(ctx, prog, argv...)
	cmd.Stdout, cmd.Stderr = in.stdout, in.stderr
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
	return in.failf("%s: %v", prog, err)
}
