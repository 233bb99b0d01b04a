package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"busmedic/cmd/busmedic/internal/cli"
)

// runCLI runs busmedic with args, as main does.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut strings.Builder
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// everyCommand calls f with the words that name each command and
// subcommand, and the command.
func everyCommand(f func(words []string, c *cli.Command)) {
	var walk func(words []string, c *cli.Command)
	walk = func(words []string, c *cli.Command) {
		f(words, c)
		for _, s := range c.Subs {
			walk(append(words[:len(words):len(words)], s.Name), s)
		}
	}
	walk(nil, topLevel())
}

// TestHelp: -h of every command prints its help once, on stdout, and exits
// 0 without running it; "help WORDS" prints the same.
func TestHelp(t *testing.T) {
	everyCommand(func(words []string, c *cli.Command) {
		name := strings.Join(append([]string{"busmedic"}, words...), " ")
		t.Run(name, func(t *testing.T) {
			code, stdout, stderr := runCLI(append(words, "-h")...)
			if code != exitOK || stderr != "" || !strings.HasPrefix(stdout, "Usage: "+c.Usage+"\n\n"+c.About+"\n") ||
				strings.Count(stdout, "Usage:") != 1 {
				t.Errorf("%s -h: exit %d\nstdout:\n%s\nstderr:\n%s", name, code, stdout, stderr)
			}
			if !strings.HasPrefix(c.Usage, name) {
				t.Errorf("usage line %q does not start with %q", c.Usage, name)
			}
			for _, s := range c.Subs {
				if !strings.Contains(stdout, "  "+s.Name+" ") {
					t.Errorf("%s -h does not list %s:\n%s", name, s.Name, stdout)
				}
			}
			helpCode, helpOut, helpErr := runCLI(append([]string{"help"}, words...)...)
			if helpCode != code || helpOut != stdout || helpErr != stderr {
				t.Errorf("busmedic help %s: exit %d\nstdout:\n%s\nstderr:\n%s\nwant what %s -h printed",
					strings.Join(words, " "), helpCode, helpOut, helpErr, name)
			}
		})
	})
	for _, tc := range []struct {
		args []string
		want string // in stdout
		not  string // not in stdout
	}{
		{[]string{"help", "help"}, "Usage: busmedic help [COMMAND [SUBCOMMAND]]", ""},
		{[]string{"-h"}, "Usage: busmedic [--config FILE] COMMAND", ""},
		{[]string{"--help"}, "Usage: busmedic [--config FILE] COMMAND", ""},
		{[]string{"help"}, "Usage: busmedic [--config FILE] COMMAND", ""},
		{[]string{"restart-bus", "-h"}, "[session|system]", ""},
		{[]string{"rules", "check", "-h"}, "Usage: busmedic rules check [FILE]", "add-from-pid"},
		{[]string{"rules", "help", "check"}, "Usage: busmedic rules check [FILE]", "add-from-pid"},
		{[]string{"rules", "check", "-h"}, "-config FILE", ""},
		{[]string{"rules", "add-from-pid", "1", "-h"}, "-replace", ""},
		{[]string{"autostart", "enable", "-h"}, "-target", ""},
	} {
		if code, stdout, stderr := runCLI(tc.args...); code != exitOK || stderr != "" ||
			!strings.Contains(stdout, tc.want) || tc.not != "" && strings.Contains(stdout, tc.not) {
			t.Errorf("busmedic %q: exit %d\nstdout:\n%s\nstderr:\n%s\nwant %q, not %q", tc.args, code, stdout, stderr, tc.want, tc.not)
		}
	}
}

// TestGlobalConfig: --config FILE before the command, as docs/rules.md
// shows it, is the --config of run and rules; one after the command wins.
func TestGlobalConfig(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // the --config the command gets
	}{
		{[]string{"--config", "a.toml", "run"}, "a.toml"},
		{[]string{"run", "--config", "a.toml"}, "a.toml"},
		{[]string{"--config=a.toml", "rules", "list"}, "a.toml"},
		{[]string{"--config", "a.toml", "rules", "check", "x.toml"}, "a.toml"},
		{[]string{"rules", "--config", "a.toml", "list"}, "a.toml"},
		{[]string{"--config", "a.toml", "rules", "--config", "b.toml", "list"}, "b.toml"},
		{[]string{"--config", "a.toml", "rules", "list", "--config", "b.toml"}, "b.toml"},
		{[]string{"rules", "list"}, ""},
	} {
		in, err := program().Parse(tc.args)
		if err != nil || in.Str("config") != tc.want {
			t.Errorf("busmedic %q: --config %q, %v; want %q", tc.args, in.Flags.Lookup("config"), err, tc.want)
		}
	}
	user := filepath.Join(t.TempDir(), "mine.toml")
	if code, stdout, stderr := runCLI("--config", user, "rules", "path"); code != exitOK || stdout != user+"\n" || stderr != "" {
		t.Errorf("busmedic --config %s rules path: exit %d\nstdout: %s\nstderr: %s", user, code, stdout, stderr)
	}
}

// TestWrongCommandLine: a wrong command line is said once on stderr, with
// the usage, and exits 2 without running the command.
func TestWrongCommandLine(t *testing.T) {
	check := func(t *testing.T, c *cli.Command, args []string, want string) {
		t.Helper()
		code, stdout, stderr := runCLI(args...)
		if code != exitUsage || stdout != "" || !strings.HasPrefix(stderr, want+"\nUsage: "+c.Usage+"\n") ||
			strings.Count(stderr, "Usage:") != 1 {
			t.Errorf("busmedic %q: exit %d, want %d\nstdout:\n%s\nstderr:\n%s\nwant first %q", args, code, exitUsage, stdout, stderr, want)
		}
	}
	everyCommand(func(words []string, c *cli.Command) {
		name := strings.Join(append([]string{"busmedic"}, words...), " ")
		t.Run(name, func(t *testing.T) {
			check(t, c, append(words, "--no-such-flag"), name+": flag provided but not defined: -no-such-flag")
			switch {
			case len(c.Subs) > 0:
				check(t, c, append(words, "no-such"), name+`: unknown command "no-such"`)
				if c.Run == nil {
					check(t, c, words, name+": missing command")
				}
			default:
				args := append(words[:len(words):len(words)], make([]string, c.MaxArgs+1)...)
				for i := len(words); i < len(args); i++ {
					args[i] = "x" + string(rune('0'+i))
				}
				check(t, c, args, name+`: unexpected argument "`+args[len(args)-1]+`"`)
				if c.MinArgs > 0 {
					check(t, c, words, name+": missing argument")
				}
			}
		})
	})
	top := topLevel()
	rules := top.Sub("rules")
	for _, tc := range []struct {
		c    *cli.Command
		args []string
		want string
	}{
		{top, nil, "busmedic: missing command"},
		{top, []string{"help", "frobnicate"}, `busmedic: unknown command "frobnicate"`},
		{rules, []string{"help", "rules", "frobnicate"}, `busmedic rules: unknown command "frobnicate"`},
		{rules, []string{"rules", "--config"}, "busmedic rules: flag needs an argument: -config"},
		{top.Sub("status"), []string{"--config", "f.toml", "status"}, "busmedic status: --config is for busmedic run and busmedic rules only"},
		{top, []string{"--config"}, "busmedic: flag needs an argument: -config"},
		{top.Sub("restart-bus"), []string{"restart-bus", "foo"}, `busmedic restart-bus: no bus "foo" (want session or system)`},
		{rules.Sub("add-from-pid"), []string{"rules", "add-from-pid", "abc"}, `busmedic rules add-from-pid: bad PID "abc"`},
		{top.Sub("autostart").Sub("enable"), []string{"autostart", "enable", "--systemd", "--desktop-file"},
			"busmedic autostart enable: --systemd or --desktop-file, not both"},
	} {
		check(t, tc.c, tc.args, tc.want)
	}
}
