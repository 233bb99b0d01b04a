package main

import (
	"context"
	_ "embed"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"busmedic/appdb"
	"busmedic/relaunch/control"
)

// The completion scripts: each hands the words of the command line to
// "busmedic __complete" and offers what it prints, so that the commands,
// flags and ids they complete come from the command table and the rules.
var (
	//go:embed completion/busmedic.bash
	bashCompletion string
	//go:embed completion/_busmedic
	zshCompletion string
	//go:embed completion/busmedic.fish
	fishCompletion string
)

// completeCommand is the hidden command the completion scripts run:
// "busmedic __complete [--] WORD... CURRENT" prints the candidates for
// CURRENT, the word being completed ("" for a new one), after the WORDs
// already on the command line (busmedic itself left out): one a line,
// "candidate<TAB>description", already filtered by CURRENT's prefix; or
// the single line ":file" when CURRENT is a file name. It is not in the
// command table: it is no command for people, and neither help nor the man
// page lists it.
const completeCommand = "__complete"

// fileDirective is the line that asks the script to complete file names.
const fileDirective = ":file"

// completionTimeout bounds the question to the daemon for casualty ids: a
// shell must not hang on a daemon that does not answer.
const completionTimeout = 500 * time.Millisecond

// argKind is what a command's positional arguments are, for completion.
type argKind int

const (
	argNone    argKind = iota
	argApp             // a rule's id, or a casualty's id from the daemon
	argFile            // a file name
	argCommand         // a command of the parent (help COMMAND)
)

// flagWords are the values of the flags that take one of a few words.
var flagWords = map[string][]string{
	"action": {string(appdb.ActionRelaunch), string(appdb.ActionNotify), string(appdb.ActionIgnore)},
	"bus":    {"session", "system"},
	"target": {"graphical-session.target", "default.target"},
}

// fileFlags are the flags whose value is a file or directory name.
var fileFlags = map[string]bool{"config": true, "socket": true, "state-dir": true}

func runCompletion(ctx context.Context, in *call) int {
	scripts := map[string]string{"bash": bashCompletion, "zsh": zshCompletion, "fish": fishCompletion}
	s, ok := scripts[in.args[0]]
	if !ok {
		return in.usageError("no shell %q (want bash, zsh or fish)", in.args[0])
	}
	fmt.Fprint(in.stdout, s)
	return exitOK
}

// candidate is one completion with what it is.
type candidate struct{ word, about string }

// runComplete is "busmedic __complete WORD... CURRENT".
func runComplete(ctx context.Context, args []string, stdout io.Writer) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		args = []string{""}
	}
	words, cur := args[:len(args)-1], args[len(args)-1]
	cands, files := complete(ctx, words, cur)
	if files {
		fmt.Fprintln(stdout, fileDirective)
		return exitOK
	}
	for _, c := range cands {
		if !strings.HasPrefix(c.word, cur) {
			continue
		}
		if c.about != "" {
			fmt.Fprintf(stdout, "%s\t%s\n", c.word, oneLine(c.about))
		} else {
			fmt.Fprintln(stdout, c.word)
		}
	}
	return exitOK
}

// oneLine is the first line of s, for a description.
func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.ReplaceAll(s, "\t", " ")
}

// complete walks words as run would parse them, and returns the candidates
// for cur, or files when cur is a file name.
func complete(ctx context.Context, words []string, cur string) (cands []candidate, files bool) {
	path := []*command{topLevel()}
	fs := newFlagSet()
	path[0].flags(fs)
	var posArgs []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		c := path[len(path)-1]
		switch {
		case w == "--":
			posArgs = append(posArgs, words[i+1:]...)
			i = len(words)
		case strings.HasPrefix(w, "-") && w != "-":
			name, value, ok := strings.Cut(strings.TrimLeft(w, "-"), "=")
			if f := fs.Lookup(name); f != nil && !ok && !isBool(f) && i+1 < len(words) {
				i++
				value, ok = words[i], true
			}
			if ok {
				fs.Set(name, value) // --config and --socket count
			}
		case len(c.subs) > 0 && len(posArgs) == 0:
			sub := c.sub(w)
			if sub == nil {
				return nil, false
			}
			path = append(path, sub)
			config := ""
			if len(path) == 2 {
				// As parse does: the top level's --config passes on.
				config = fs.Lookup("config").Value.String()
				fs = newFlagSet()
			}
			if sub.flags != nil {
				sub.flags(fs)
			}
			if config != "" && fs.Lookup("config") != nil {
				fs.Set("config", config)
			}
		default:
			posArgs = append(posArgs, w)
		}
	}
	c := path[len(path)-1]
	// The value of a flag.
	if n := len(words); n > 0 && strings.HasPrefix(words[n-1], "-") && !strings.Contains(words[n-1], "=") {
		if f := fs.Lookup(strings.TrimLeft(words[n-1], "-")); f != nil && !isBool(f) {
			return flagValue(f)
		}
	}
	if strings.HasPrefix(cur, "-") {
		fs.VisitAll(func(f *flag.Flag) {
			_, usage := flag.UnquoteUsage(f)
			dash := "--"
			if len(f.Name) == 1 {
				dash = "-" // as help shows them: -n, -v
			}
			cands = append(cands, candidate{dash + f.Name, usage})
		})
		return cands, false
	}
	if len(c.subs) > 0 && len(posArgs) == 0 {
		for _, s := range c.subs {
			cands = append(cands, candidate{s.name, s.summary})
		}
		return cands, false
	}
	if len(posArgs) >= c.maxArgs {
		return nil, false
	}
	for _, w := range c.argWords {
		cands = append(cands, candidate{w, ""})
	}
	switch c.argKind {
	case argApp:
		cands = append(cands, appIDs(ctx, fs)...)
	case argFile:
		return nil, true
	case argCommand:
		// help COMMAND SUBCOMMAND
		parent := path[len(path)-2]
		for _, a := range posArgs {
			if parent = parent.sub(a); parent == nil {
				return nil, false
			}
		}
		for _, s := range parent.subs {
			if s.name != "help" {
				cands = append(cands, candidate{s.name, s.summary})
			}
		}
	}
	return cands, false
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func flagValue(f *flag.Flag) ([]candidate, bool) {
	if fileFlags[f.Name] {
		return nil, true
	}
	var cands []candidate
	for _, w := range flagWords[f.Name] {
		cands = append(cands, candidate{w, ""})
	}
	return cands, false
}

// appIDs are the ids relaunch takes: the rules' ids, read from the rules
// files (the daemon need not run), then the casualties' ids, which only
// the daemon knows. The top level's --config and the command's --socket
// on the command line count.
func appIDs(ctx context.Context, fs *flag.FlagSet) []candidate {
	var cands []candidate
	config := ""
	if f := fs.Lookup("config"); f != nil {
		config = f.Value.String()
	}
	if set, err := appdb.Load(appdb.DefaultPaths(config)); err == nil {
		for _, r := range set.Rules() {
			if r.Enabled {
				cands = append(cands, candidate{r.ID, "rule: " + r.DisplayName()})
			}
		}
	}
	socket := control.DefaultPath()
	if f := fs.Lookup("socket"); f != nil {
		socket = f.Value.String()
	}
	ctx, cancel := context.WithTimeout(ctx, completionTimeout)
	defer cancel()
	c, err := control.Dial(ctx, socket)
	if err != nil {
		return cands
	}
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		return cands
	}
	for _, cas := range st.Casualties {
		cands = append(cands, candidate{cas.ID, "fell off the " + cas.Bus + " bus: " + cas.Peer.String()})
	}
	return cands
}
