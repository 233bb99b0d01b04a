package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
)

// completeCommand is the hidden command the completion scripts run:
// "PROGRAM __complete [--] WORD... CURRENT" prints the candidates for
// CURRENT, the word being completed ("" for a new one), after the WORDs
// already on the command line (the program itself left out): one a line,
// "candidate<TAB>description", already filtered by CURRENT's prefix; or
// the single line ":file" when CURRENT is a file name. It is not in the
// command tree: it is no command for people, and neither help nor the man
// page lists it.
const completeCommand = "__complete"

// fileDirective is the line that asks the script to complete file names.
const fileDirective = ":file"

// Candidate is one completion with what it is.
type Candidate struct{ Word, About string }

// runComplete is "PROGRAM __complete WORD... CURRENT".
func (p *Program) runComplete(ctx context.Context, args []string, stdout io.Writer) int {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		args = []string{""}
	}
	words, cur := args[:len(args)-1], args[len(args)-1]
	cands, files := p.complete(ctx, words, cur)
	if files {
		fmt.Fprintln(stdout, fileDirective)
		return ExitOK
	}
	for _, c := range cands {
		if !strings.HasPrefix(c.Word, cur) {
			continue
		}
		if c.About != "" {
			fmt.Fprintf(stdout, "%s\t%s\n", c.Word, oneLine(c.About))
		} else {
			fmt.Fprintln(stdout, c.Word)
		}
	}
	return ExitOK
}

// oneLine is the first line of s, for a description.
func oneLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return strings.ReplaceAll(s, "\t", " ")
}

// complete walks words as Parse would, and returns the candidates for
// cur, or files when cur is a file name.
func (p *Program) complete(ctx context.Context, words []string, cur string) (cands []Candidate, files bool) {
	path := []*Command{p.Top}
	fs := p.Top.FlagSet()
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
		case len(c.Subs) > 0 && len(posArgs) == 0:
			sub := c.Sub(w)
			if sub == nil {
				return nil, false
			}
			path = append(path, sub)
			var passed map[string]string
			if len(path) == 2 {
				// As parse does: the top level's Passed flags pass on.
				passed = p.passed(fs)
				fs = newFlagSet(p.Top.Name)
			}
			if sub.Flags != nil {
				sub.Flags(fs)
			}
			for name, value := range passed {
				if fs.Lookup(name) != nil {
					fs.Set(name, value)
				}
			}
		default:
			posArgs = append(posArgs, w)
		}
	}
	c := path[len(path)-1]
	// The value of a flag.
	if n := len(words); n > 0 && strings.HasPrefix(words[n-1], "-") && !strings.Contains(words[n-1], "=") {
		if f := fs.Lookup(strings.TrimLeft(words[n-1], "-")); f != nil && !isBool(f) {
			return p.flagValue(f)
		}
	}
	if strings.HasPrefix(cur, "-") {
		fs.VisitAll(func(f *flag.Flag) {
			_, usage := flag.UnquoteUsage(f)
			dash := "--"
			if len(f.Name) == 1 {
				dash = "-" // as help shows them: -n, -v
			}
			cands = append(cands, Candidate{dash + f.Name, usage})
		})
		return cands, false
	}
	if len(c.Subs) > 0 && len(posArgs) == 0 {
		for _, s := range c.Subs {
			cands = append(cands, Candidate{s.Name, s.Summary})
		}
		return cands, false
	}
	if len(posArgs) >= c.MaxArgs {
		return nil, false
	}
	for _, w := range c.ArgWords {
		cands = append(cands, Candidate{w, ""})
	}
	switch {
	case c.ArgComplete != nil:
		cands = append(cands, c.ArgComplete(ctx, fs)...)
	case c.ArgFiles:
		return nil, true
	case c.argCommands:
		// help COMMAND SUBCOMMAND
		parent := path[len(path)-2]
		for _, a := range posArgs {
			if parent = parent.Sub(a); parent == nil {
				return nil, false
			}
		}
		for _, s := range parent.Subs {
			if s.Name != "help" {
				cands = append(cands, Candidate{s.Name, s.Summary})
			}
		}
	}
	return cands, false
}

func isBool(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func (p *Program) flagValue(f *flag.Flag) ([]Candidate, bool) {
	if p.FileFlags[f.Name] {
		return nil, true
	}
	var cands []Candidate
	for _, w := range p.FlagWords[f.Name] {
		cands = append(cands, Candidate{w, ""})
	}
	return cands, false
}
