package appdb

import (
	"errors"
	"path"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode/utf8"

	"busmedic/watcher"
)

// Match returns the enabled rule that applies to a peer, on any bus.
//
// Precedence: a rule whose names include a name the peer owns, then a rule
// whose exe is the peer's executable, then one whose argv0 pattern matches
// argv[0], then one whose cmdline pattern matches the command line. Within
// one step, rules from the user file come before system rules, and earlier
// rules in a file before later ones. A peer that runs as another user (UID
// known and different from the set's) matches nothing: busmedic acts only on
// its user's own processes.
func (s *Set) Match(p watcher.Peer) (Rule, bool) {
	return s.match("", p)
}

// MatchBus is Match restricted to the rules that watch bus (BusSession or
// BusSystem).
func (s *Set) MatchBus(bus Bus, p watcher.Peer) (Rule, bool) {
	return s.match(bus, p)
}

func (s *Set) match(bus Bus, p watcher.Peer) (Rule, bool) {
	if s == nil || (p.UID >= 0 && p.UID != s.uid) {
		return Rule{}, false
	}
	exe := strings.TrimSuffix(p.Exe, " (deleted)") // replaced by a package update
	var argv0, cmdline string
	if len(p.Argv) > 0 {
		argv0 = p.Argv[0]
		cmdline = strings.Join(p.Argv, " ")
	}
	steps := []func(r *Rule) bool{
		func(r *Rule) bool {
			for _, n := range r.Names {
				if p.Owns(n) {
					return true
				}
			}
			return false
		},
		func(r *Rule) bool { return r.Exe != "" && r.Exe == exe },
		func(r *Rule) bool {
			if r.Argv0 == "" || argv0 == "" {
				return false
			}
			subject := argv0
			if !strings.Contains(r.Argv0, "/") {
				subject = path.Base(argv0)
			}
			return s.globs[r.Argv0].MatchString(subject)
		},
		func(r *Rule) bool {
			return r.Cmdline != "" && cmdline != "" && s.globs[r.Cmdline].MatchString(cmdline)
		},
	}
	for _, step := range steps {
		for i := range s.rules {
			r := &s.rules[i]
			if !r.Enabled || (bus != "" && !r.Bus.Includes(bus)) {
				continue
			}
			if step(r) {
				return r.clone(), true
			}
		}
	}
	return Rule{}, false
}

// compileGlob turns a pattern into an anchored regular expression.
//
// The syntax is the shell's: '*' matches any run of characters (including
// '/' and spaces), '?' any one character, "[abc]", "[a-z]" and "[!a-z]" a
// character class, and '\' makes the next character literal.
func compileGlob(pat string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString(`^(?s:`)
	for i := 0; i < len(pat); i++ {
		switch c := pat[i]; c {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		case '\\':
			if i+1 == len(pat) {
				return nil, errors.New(`trailing '\'`)
			}
			i++
			writeLiteral(&b, pat[i])
		case '[':
			j := i + 1
			if j < len(pat) && (pat[j] == '!' || pat[j] == '^') {
				j++
			}
			if j < len(pat) && pat[j] == ']' {
				j++
			}
			for j < len(pat) && pat[j] != ']' {
				j++
			}
			if j >= len(pat) {
				return nil, errors.New("'[' without ']'")
			}
			class := pat[i+1 : j]
			b.WriteByte('[')
			if class[0] == '!' || class[0] == '^' {
				b.WriteByte('^')
				class = class[1:]
			}
			for k := 0; k < len(class); k++ {
				switch ch := class[k]; ch {
				case '\\', '[', ']', '^':
					b.WriteByte('\\')
					b.WriteByte(ch)
				default:
					b.WriteByte(ch)
				}
			}
			b.WriteByte(']')
			i = j
		default:
			writeLiteral(&b, c)
		}
	}
	b.WriteString(`)$`)
	re, err := regexp.Compile(b.String())
	if err != nil {
		var se *syntax.Error
		if errors.As(err, &se) {
			return nil, errors.New(strings.TrimPrefix(string(se.Code), "invalid "))
		}
		return nil, err
	}
	return re, nil
}

// writeLiteral writes one byte of the pattern so that it matches itself;
// the bytes of a multi-byte character are copied as they are.
func writeLiteral(b *strings.Builder, c byte) {
	if c < utf8.RuneSelf {
		b.WriteString(regexp.QuoteMeta(string(rune(c))))
	} else {
		b.WriteByte(c)
	}
}

// quoteGlob escapes the pattern characters of s, so that it matches only s.
func quoteGlob(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[]\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}
