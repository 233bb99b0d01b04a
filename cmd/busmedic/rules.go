package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	"busmedic/appdb"
	"busmedic/assets"
	"busmedic/cmd/busmedic/internal/cli"
	"busmedic/tray"
)

func rulesList(ctx context.Context, in *cli.Call) int {
	paths := appdb.DefaultPaths(in.Str("config"))
	set, err := appdb.Load(paths)
	if err != nil {
		fmt.Fprintln(in.Stderr, err) // each problem, with its file and line
		return exitError
	}
	if w := set.Warnings(); len(w) > 0 {
		fmt.Fprintln(in.Stderr, w)
	}
	rules := set.Rules()
	switch {
	case in.On("json"):
		err = appdb.WriteJSON(in.Stdout, rules)
	case len(rules) == 0:
		_, err = fmt.Fprintf(in.Stdout, "no rules (add some to %s)\n", paths.User)
	default:
		err = appdb.WriteTable(in.Stdout, rules)
	}
	if err != nil {
		return in.Failf("%v", err)
	}
	return exitOK
}

func rulesCheck(ctx context.Context, in *cli.Call) int {
	files := in.Args
	if len(files) == 0 {
		paths := appdb.DefaultPaths(in.Str("config"))
		if files = paths.Present(); len(files) == 0 {
			fmt.Fprintf(in.Stdout, "no rules files (the user file would be %s)\n", paths.User)
			return exitOK
		}
	}
	if !appdb.CheckFiles(in.Stdout, in.Stderr, files) {
		return exitError
	}
	return exitOK
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
	paths := appdb.DefaultPaths(in.Str("config"))
	r, warnings, err := appdb.AddFromPID(ctx, paths, pid, in.Str("id"), action, in.On("replace"))
	var exists *appdb.ExistsError
	switch {
	case errors.Is(err, appdb.ErrNoID):
		return in.Failf("%v; give the rule an id with --id ID", err)
	case errors.Is(err, appdb.ErrCannotRelaunch):
		return in.Failf("%v, or add the rule with --action notify", err)
	case errors.As(err, &exists):
		return in.Failf("%v (choose another --id, or --replace it)", err)
	case err != nil:
		return in.Failf("%v", err)
	}
	fmt.Fprintf(in.Stdout, "# added to %s\n%s", paths.User, appdb.FormatRule(r))
	if len(warnings) > 0 {
		fmt.Fprintln(in.Stderr, warnings)
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

// rulesEdit runs the editor and waits for it; its exit status becomes
// ours. Ctrl-C or SIGTERM is passed on to it.
func rulesEdit(ctx context.Context, in *cli.Call) int {
	err := tray.RunEditor(ctx, in.Str("config"), in.Stdout, in.Stderr)
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, exec.ErrNotFound):
		next := "the busmedic executable"
		if self, err := assets.Executable(); err == nil {
			next = filepath.Dir(self)
		}
		return in.Failf(`the editor %[1]s is not installed (looked in %[2]s and in $PATH).
Build it from the busmedic source tree; it needs cgo and the GL and X11 headers
(Debian: sudo apt-get install libgl1-mesa-dev xorg-dev):
  go build -o %[2]s/%[1]s ./cmd/%[1]s
or install it into $(go env GOPATH)/bin with: go install ./cmd/%[1]s
Without it, edit the rules file by hand: busmedic rules path`, tray.EditorProgram, next)
	case errors.As(err, &exitErr) && exitErr.ExitCode() > 0:
		return exitErr.ExitCode()
	case ctx.Err() != nil:
		return exitOK // interrupted, as "watch" on Ctrl-C
	}
	return in.Failf("%v", err)
}
