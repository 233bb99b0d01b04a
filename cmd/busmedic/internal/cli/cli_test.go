package cli

import (
	"context"
	"flag"
	"slices"
	"strings"
	"testing"
)

// toy is a small program: a top level with --config that passes on, a
// command with interleaved flags and arguments, one with subcommands, and
// help.
func toy(got *[]string) *Program {
	record := func(ctx context.Context, in *Call) int {
		*got = append([]string{in.Name(), "config=" + in.Str("config")}, in.Args...)
		return ExitOK
	}
	return &Program{
		Top: &Command{
			Name: "toy", Usage: "toy [--config FILE] COMMAND", About: "A toy.",
			Flags: func(fs *flag.FlagSet) { fs.String("config", "", "`FILE` to read") },
			Subs: []*Command{{
				Name: "get", Summary: "get IDs", Usage: "toy get [--all] ID...", About: "Gets.",
				Flags: func(fs *flag.FlagSet) {
					fs.String("config", "", "`FILE` to read")
					fs.Bool("all", false, "every one")
				},
				MinArgs: 1, MaxArgs: 2, Interleave: true, Run: record,
				ArgComplete: func(ctx context.Context, fs *flag.FlagSet) []Candidate {
					return []Candidate{{Word: "one", About: "from " + fs.Lookup("config").Value.String()}, {Word: "two"}}
				},
			}, {
				Name: "files", Summary: "list files", Usage: "toy files [list|check FILE]", About: "Files.",
				Subs: []*Command{{
					Name: "check", Summary: "check FILE", Usage: "toy files check FILE", About: "Checks.",
					MaxArgs: 1, ArgFiles: true, Run: record,
				}, HelpCommand("toy files")},
			}, {
				Name: "mode", Summary: "set the mode", Usage: "toy mode fast|slow", About: "Sets.",
				Flags:   func(fs *flag.FlagSet) { fs.String("speed", "", "the speed") },
				MaxArgs: 1, ArgWords: []string{"fast", "slow"}, Run: record,
			}, HelpCommand("toy")},
		},
		Passed:    []string{"config"},
		FlagWords: map[string][]string{"speed": {"high", "low"}},
		FileFlags: map[string]bool{"config": true},
	}
}

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		got  []string // what the command was given
		out  string   // the start of stdout
		err  string   // the start of stderr
	}{
		{"interleaved", []string{"get", "a", "--all", "b"}, ExitOK, []string{"toy get", "config=", "a", "b"}, "", ""},
		{"after --", []string{"get", "--", "a", "--all"}, ExitOK, []string{"toy get", "config=", "a", "--all"}, "", ""},
		{"passed flag", []string{"--config", "x", "get", "a"}, ExitOK, []string{"toy get", "config=x", "a"}, "", ""},
		{"own flag wins", []string{"--config", "x", "get", "--config", "y", "a"}, ExitOK, []string{"toy get", "config=y", "a"}, "", ""},
		{"passed to a command without it", []string{"--config", "x", "mode"}, ExitUsage, nil, "",
			"toy mode: --config is for toy get only\nUsage: toy mode fast|slow\nRun \"toy help mode\" for more.\n"},
		{"help", []string{"files", "-h"}, ExitOK, nil,
			"Usage: toy files [list|check FILE]\n\nFiles.\n\nCommands:\n  check  check FILE\n  help   list the commands, or describe one: help COMMAND\n\nRun \"toy files COMMAND -h\" for a command's options.\n", ""},
		{"help command", []string{"files", "help", "check"}, ExitOK, nil, "Usage: toy files check FILE\n\nChecks.\n", ""},
		{"missing argument", []string{"get"}, ExitUsage, nil, "", "toy get: missing argument\nUsage: toy get [--all] ID...\n"},
		{"unexpected argument", []string{"get", "a", "b", "c"}, ExitUsage, nil, "", "toy get: unexpected argument \"c\"\n"},
		{"missing command", []string{"files"}, ExitUsage, nil, "",
			"toy files: missing command\nUsage: toy files [list|check FILE]\n\nCommands:\n  check  check FILE\n"},
		{"unknown command", []string{"nosuch"}, ExitUsage, nil, "", "toy: unknown command \"nosuch\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			var stdout, stderr strings.Builder
			code := toy(&got).Run(t.Context(), tc.args, &stdout, &stderr)
			if code != tc.code || !slices.Equal(got, tc.got) || !strings.HasPrefix(stdout.String(), tc.out) ||
				!strings.HasPrefix(stderr.String(), tc.err) || tc.out == "" && stdout.Len() > 0 || tc.err == "" && stderr.Len() > 0 {
				t.Errorf("toy %q: exit %d, ran %q\nstdout:\n%s\nstderr:\n%s\nwant exit %d, ran %q, stdout from %q, stderr from %q",
					tc.args, code, got, stdout.String(), stderr.String(), tc.code, tc.got, tc.out, tc.err)
			}
		})
	}
}

func TestComplete(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string // after __complete
		want string
	}{
		{"commands", []string{"--", ""}, "get\tget IDs\nfiles\tlist files\nmode\tset the mode\nhelp\tlist the commands, or describe one: help COMMAND\n"},
		{"prefix", []string{"--", "f"}, "files\tlist files\n"},
		{"flags", []string{"--", "get", "-"}, "--all\tevery one\n--config\tFILE to read\n"},
		{"arguments, with the passed flag", []string{"--", "--config=c", "get", ""}, "one\tfrom c\ntwo\n"},
		{"one argument too many", []string{"--", "get", "a", "b", ""}, ""},
		{"argument words", []string{"--", "mode", ""}, "fast\nslow\n"},
		{"flag words", []string{"--", "mode", "--speed", ""}, "high\nlow\n"},
		{"file flag", []string{"--", "--config", ""}, ":file\n"},
		{"file argument", []string{"--", "files", "check", ""}, ":file\n"},
		{"help", []string{"--", "files", "help", ""}, "check\tcheck FILE\n"},
		{"help of the top level", []string{"--", "help", "files", "c"}, "check\tcheck FILE\n"},
		{"no such command", []string{"--", "nosuch", ""}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			var got []string
			code := toy(&got).Run(t.Context(), append([]string{"__complete"}, tc.args...), &stdout, &stderr)
			if code != ExitOK || stdout.String() != tc.want || stderr.Len() > 0 || got != nil {
				t.Errorf("__complete %q: exit %d\nstdout:\n%s\nstderr:\n%s\nwant:\n%s", tc.args, code, stdout.String(), stderr.String(), tc.want)
			}
		})
	}
}
