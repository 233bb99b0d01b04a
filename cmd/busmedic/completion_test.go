package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"busmedic/relaunch/control"
	"busmedic/relaunch/control/controltest"
	"busmedic/watcher"
)

// TestComplete: the candidates __complete prints for a command line, from
// the command table and the rules files (no daemon runs).
func TestComplete(t *testing.T) {
	completionEnv(t)
	for _, tc := range []struct {
		name  string
		words []string
		want  []string // the candidate words, in order
	}{
		{"commands", []string{"re"}, []string{"relaunch", "restart-bus", "resume", "reload"}},
		{"subcommands", []string{"rules", ""}, []string{"list", "check", "add-from-pid", "path", "edit", "help"}},
		{"flags", []string{"history", "-"}, []string{"--json", "-n", "--socket", "-v"}},
		{"rule ids", []string{"relaunch", ""}, []string{"dunst", "panel"}},
		{"rule id prefix", []string{"relaunch", "d"}, []string{"dunst"}},
		{"after a flag", []string{"relaunch", "-v", "p"}, []string{"panel"}},
		{"one argument only", []string{"relaunch", "dunst", ""}, nil},
		{"flag words", []string{"rules", "add-from-pid", "1", "--action", ""}, []string{"relaunch", "keep", "notify", "ignore"}},
		{"argument words", []string{"restart-bus", ""}, []string{"session", "system"}},
		{"shells", []string{"completion", ""}, []string{"bash", "zsh", "fish"}},
		{"help", []string{"help", "rules", "a"}, []string{"add-from-pid"}},
		{"no such command", []string{"nosuch", ""}, nil},
		{"file", []string{"rules", "check", ""}, []string{":file"}},
		{"file flag", []string{"--config", ""}, []string{":file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := completeWords(t, tc.words...); !slices.Equal(got, tc.want) {
				t.Errorf("__complete %q: %q, want %q", tc.words, got, tc.want)
			}
		})
	}
}

// TestCompleteCasualties: with a daemon, relaunch also completes the ids
// of the apps that fell off the bus, from busmedic status.
func TestCompleteCasualties(t *testing.T) {
	completionEnv(t)
	d := controltest.NewDaemon(control.Status{Casualties: []control.Casualty{
		{ID: "session-clock-1", Bus: "session", Peer: watcher.Peer{Names: []string{"org.example.Clock"}}},
	}})
	socket := controltest.Serve(t, d)
	got := completeWords(t, "relaunch", "--socket", socket, "")
	if want := []string{"dunst", "panel", "session-clock-1"}; !slices.Equal(got, want) {
		t.Errorf("relaunch ids with a daemon: %q, want %q", got, want)
	}
}

// completionEnv points the rules at a user file with two rules, and nothing
// else: no system file, no daemon.
func completionEnv(t *testing.T) string {
	dir := t.TempDir()
	rules := filepath.Join(dir, "apps.toml")
	text := "[[app]]\nid = \"dunst\"\nnames = [\"org.freedesktop.Notifications\"]\n\n" +
		"[[app]]\nid = \"panel\"\nname = \"Xfce panel\"\nargv0 = \"xfce4-panel\"\n\n" +
		"[[app]]\nid = \"off\"\nenabled = false\n"
	if err := os.WriteFile(rules, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BUSMEDIC_CONFIG", rules)
	t.Setenv("XDG_CONFIG_DIRS", filepath.Join(dir, "none"))
	t.Setenv("XDG_RUNTIME_DIR", dir)
	return dir
}

func completeWords(t *testing.T, words ...string) []string {
	t.Helper()
	var out bytes.Buffer
	if code := run(t.Context(), append([]string{"__complete", "--"}, words...), &out, &out); code != exitOK {
		t.Fatalf("__complete %q: exit %d: %s", words, code, out.String())
	}
	var got []string
	for line := range strings.SplitSeq(strings.TrimSuffix(out.String(), "\n"), "\n") {
		if line != "" {
			w, _, _ := strings.Cut(line, "\t")
			got = append(got, w)
		}
	}
	return got
}

// TestCompletionScripts: each shell loads its script from "busmedic
// completion SHELL" and completes a rule id through the real busmedic.
// bash runs the completion function as complete -F would, with COMP_WORDS;
// fish completes a command line with complete --do-complete; zsh loads the
// script under compinit (it registers itself with compdef) and runs the
// function with words and CURRENT, with _describe, which needs a live
// command line editor, standing in to print what it is given.
func TestCompletionScripts(t *testing.T) {
	dir := completionEnv(t)
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(busmedicBinary(t), filepath.Join(bin, "busmedic")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	t.Setenv("HOME", dir)
	for _, tc := range []struct {
		shell string
		args  []string
		want  string
	}{
		{"bash", []string{"--norc", "--noprofile", "-c", `source <(busmedic completion bash) &&
complete -p busmedic &&
COMP_WORDS=(busmedic relaunch d) COMP_CWORD=2 && _busmedic && printf '%s\n' "${COMPREPLY[@]}"`},
			"complete -F _busmedic busmedic\ndunst\n"},
		{"zsh", []string{"-f", "-c", `autoload -U compinit && compinit -u -d "$HOME/.zcompdump" &&
source <(busmedic completion zsh) && print -r -- $_comps[busmedic] &&
_describe() { print -rl -- "${(@P)4}" } &&
words=(busmedic relaunch d) CURRENT=3 && _busmedic`},
			"_busmedic\ndunst:rule: dunst\n"},
		{"fish", []string{"--no-config", "-c", `busmedic completion fish | source; and complete --do-complete "busmedic relaunch d"`},
			"dunst\trule: dunst\n"},
	} {
		t.Run(tc.shell, func(t *testing.T) {
			if _, err := exec.LookPath(tc.shell); err != nil {
				t.Skipf("%s not installed (scripts/ensure-deps test installs it)", tc.shell)
			}
			out, err := exec.Command(tc.shell, tc.args...).CombinedOutput()
			if err != nil || string(out) != tc.want {
				t.Errorf("%s: %v\n%s\nwant:\n%s", tc.shell, err, out, tc.want)
			}
		})
	}
}
