package appdb

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// CommandFile is a file whose contents run when a command runs: its
// program, or a script handed to an interpreter.
type CommandFile struct {
	// Path is the file, absolute (symlinks not resolved).
	Path string
	// Arg is the file as the command names it, such as "python3" or
	// "bin/tray.py".
	Arg string
	// Interpreter is, for a script, the base name of the program that
	// reads it, such as "python3" or "sh"; "" for a program.
	Interpreter string
}

// Role describes the file for people: `program "dunst"` or `script
// "tray.py" of python3`.
func (f CommandFile) Role() string {
	if f.Interpreter != "" {
		return "script " + quote(f.Arg) + " of " + f.Interpreter
	}
	return "program " + quote(f.Arg)
}

func quote(s string) string { return `"` + s + `"` }

// CommandFiles returns the files that running argv executes or hands to an
// interpreter as code, each once, in the order found:
//
//   - the program argv[0], looked up in the PATH of env when it has no '/';
//   - for an interpreter (sh, bash, python3, perl, ruby, node…), the first
//     argument that is not an option and is an existing file: its script
//     (none after an option that gives the code inline, such as -c or -e);
//   - for a shell's -c, the same for each command of the command line: its
//     first word after assignments and keywords, resolved in PATH as the
//     shell would, scripts run by ". FILE" or an interpreter, and the
//     commands inside $(...) and `...`;
//   - for a wrapper (env, nohup, setsid, nice, timeout, exec…), the same
//     for the command it runs.
//
// Relative paths are taken from dir; env also gives the values of $NAME in
// a shell command line. A word that cannot be known without running the
// shell (a variable it sets itself, a glob) is left out, and so are
// programs that are not found. Nothing is run.
func CommandFiles(argv []string, dir string, env []string) []CommandFile {
	w := cmdWalker{dir: dir, vars: map[string]string{}}
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			w.vars[k] = v
		}
	}
	if _, ok := w.vars["PATH"]; !ok {
		w.vars["PATH"] = os.Getenv("PATH")
	}
	if _, ok := w.vars["HOME"]; !ok {
		w.vars["HOME"], _ = os.UserHomeDir()
	}
	w.command(argv, 0)
	return w.out
}

// maxNesting bounds the shells in shells, and substitutions in
// substitutions, that CommandFiles follows.
const maxNesting = 8

type cmdWalker struct {
	dir  string
	vars map[string]string
	out  []CommandFile
}

func (w *cmdWalker) add(path, arg, interp string) {
	if !slices.ContainsFunc(w.out, func(f CommandFile) bool { return f.Path == path }) {
		w.out = append(w.out, CommandFile{Path: path, Arg: arg, Interpreter: interp})
	}
}

var (
	shellRE  = lazyRegexp(`^(sh|bash|dash|zsh|ksh|mksh|pdksh|ash|yash|posh|busybox-sh)$`)
	interpRE = lazyRegexp(`^(python|pypy|perl|ruby|jruby|node|nodejs|lua|luajit|php|tclsh|wish|Rscript|java|gjs|guile|julia)[0-9.]*$`)
	// wrappers run the command in their arguments.
	wrappers = []string{"env", "nohup", "setsid", "nice", "ionice", "stdbuf", "timeout", "exec",
		"command", "time", "chrt", "taskset", "flock", "dbus-launch", "dbus-run-session", "systemd-cat"}
	// inline gives the code on the command line: no script file follows.
	inline = sync.OnceValue(func() map[string]*regexp.Regexp {
		return map[string]*regexp.Regexp{
			"python":  regexp.MustCompile(`^-[bBdEhiIOPqsSuvVx]*[cm]`),
			"pypy":    regexp.MustCompile(`^-[bBdEhiIOPqsSuvVx]*[cm]`),
			"perl":    regexp.MustCompile(`^-[0-9aclnpsStTuUwWX]*[eE]`),
			"ruby":    regexp.MustCompile(`^-[acdlnpsSvwW]*e`),
			"jruby":   regexp.MustCompile(`^-[acdlnpsSvwW]*e`),
			"node":    regexp.MustCompile(`^(-[ep]+|-pe|--eval|--print|--eval=.*|--print=.*)$`),
			"nodejs":  regexp.MustCompile(`^(-[ep]+|-pe|--eval|--print|--eval=.*|--print=.*)$`),
			"lua":     regexp.MustCompile(`^-e`),
			"luajit":  regexp.MustCompile(`^-[eb]`),
			"php":     regexp.MustCompile(`^-r`),
			"gjs":     regexp.MustCompile(`^(-c|--command)`),
			"guile":   regexp.MustCompile(`^(-c|-e)$`),
			"julia":   regexp.MustCompile(`^(-e|-E|--eval|--print)`),
			"Rscript": regexp.MustCompile(`^-e$`),
		}
	})
	// codeOption names options whose argument is code too, when it is a
	// file: node -r ./hook.js app.js.
	codeOption = map[string][]string{
		"node":   {"-r", "--require", "--import", "--loader"},
		"nodejs": {"-r", "--require", "--import", "--loader"},
		"ruby":   {"-r"},
		"bash":   {"--rcfile", "--init-file"},
	}
	assignRE = lazyRegexp(`^[A-Za-z_][A-Za-z0-9_]*=`)
)

// lazyRegexp compiles expr at its first use. Compiled at init, the
// package's expressions would stay in the heap of every busmedic process,
// the tray's too, which never uses them (about 50 kB each).
func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

// family strips a version from an interpreter's name: python3.11 is python.
func family(base string) string {
	return strings.TrimRight(base, "0123456789.")
}

// command follows one argv: its program, then what the program runs.
func (w *cmdWalker) command(argv []string, depth int) {
	if len(argv) == 0 || argv[0] == "" || depth > maxNesting {
		return
	}
	if p, ok := w.program(argv[0]); ok {
		w.add(p, argv[0], "")
	}
	base := filepath.Base(argv[0])
	args := argv[1:]
	switch {
	case shellRE().MatchString(base):
		w.shellArgs(base, args, depth)
	case interpRE().MatchString(base):
		w.interpArgs(base, args)
	case slices.Contains(wrappers, base):
		for i, a := range args {
			if a == "--" {
				w.command(args[i+1:], depth+1)
				return
			}
			if strings.HasPrefix(a, "-") || base == "env" && assignRE().MatchString(a) {
				continue
			}
			if _, ok := w.program(a); ok {
				w.command(args[i:], depth+1)
				return
			}
			// an option's value, such as nice -n 10, or timeout's duration
		}
	}
}

// shellArgs follows the arguments of sh: the -c command line, or the
// script.
func (w *cmdWalker) shellArgs(base string, args []string, depth int) {
	cmdString := false
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if a == "-" || !strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "+") {
			break
		}
		if strings.HasPrefix(a, "--") {
			if slices.Contains(codeOption[base], a) && i+1 < len(args) {
				i++
				w.script(args[i], base, false)
			}
			continue
		}
		opts := a[1:]
		if strings.Contains(opts, "s") {
			return // commands from stdin
		}
		if strings.Contains(opts, "c") {
			cmdString = true
		}
		if strings.Contains(opts, "o") || strings.Contains(opts, "O") {
			i++ // -o pipefail
		}
	}
	if i >= len(args) {
		return
	}
	if cmdString {
		w.shellLine(args[i], depth+1)
		return
	}
	// bash looks for a script that is not in the directory in PATH.
	w.script(args[i], base, true)
}

// interpArgs finds an interpreter's script: the first argument that is not
// an option and is an existing file.
func (w *cmdWalker) interpArgs(base string, args []string) {
	fam := family(base)
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			if i+1 < len(args) {
				w.script(args[i+1], base, false)
			}
			return
		}
		if re := inline()[fam]; re != nil && re.MatchString(a) {
			return
		}
		if slices.Contains(codeOption[fam], a) && i+1 < len(args) {
			i++
			w.script(args[i], base, false)
			continue
		}
		if strings.HasPrefix(a, "-") {
			continue
		}
		if w.script(a, base, false) {
			return
		}
		// an option's value (python3 -W ignore x.py) or a name
	}
}

// script adds arg as a script of interp if it is an existing regular file,
// and reports whether it is.
func (w *cmdWalker) script(arg, interp string, searchPath bool) bool {
	if p, ok := w.file(arg); ok {
		w.add(p, arg, interp)
		return true
	}
	if searchPath && !strings.Contains(arg, "/") {
		for d := range w.pathDirs() {
			if p := filepath.Join(d, arg); isRegular(p) {
				w.add(p, arg, interp)
				return true
			}
		}
	}
	return false
}

// file resolves a file name from dir.
func (w *cmdWalker) file(name string) (string, bool) {
	if name == "" {
		return "", false
	}
	p := name
	if !filepath.IsAbs(p) {
		if w.dir == "" || !filepath.IsAbs(w.dir) {
			return "", false
		}
		p = filepath.Join(w.dir, p)
	}
	return p, isRegular(p)
}

// program resolves a command word as the shell and exec do: a name
// without '/' in PATH (only its absolute directories), else from dir.
func (w *cmdWalker) program(name string) (string, bool) {
	if strings.Contains(name, "/") {
		return w.file(name)
	}
	if name == "" || name == "." || name == ".." {
		return "", false
	}
	for d := range w.pathDirs() {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

func (w *cmdWalker) pathDirs() func(yield func(string) bool) {
	return func(yield func(string) bool) {
		for d := range strings.SplitSeq(w.vars["PATH"], ":") {
			if d == "" || !filepath.IsAbs(d) {
				continue // never the current directory
			}
			if !yield(d) {
				return
			}
		}
	}
}

func isRegular(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// keywords of the shell that come before a command.
var keywords = []string{"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}", "time", "esac"}

// shellLine follows each command of a shell command line.
func (w *cmdWalker) shellLine(line string, depth int) {
	if depth > maxNesting {
		return
	}
	lx := shLexer{s: line, vars: w.vars}
	cmds := lx.commands()
	for _, words := range cmds {
		// Assignments and keywords come before the command word.
		for len(words) > 0 && !words[0].dynamic &&
			(assignRE().MatchString(words[0].text) || slices.Contains(keywords, words[0].text)) {
			words = words[1:]
		}
		if len(words) == 0 || words[0].dynamic {
			continue
		}
		switch words[0].text {
		case "for", "case", "select", "function", "in":
			continue
		case ".", "source":
			if len(words) > 1 && !words[1].dynamic {
				w.script(words[1].text, "sh", true)
			}
			continue
		case "eval":
			var parts []string
			for _, wd := range words[1:] {
				parts = append(parts, wd.text)
			}
			w.shellLine(strings.Join(parts, " "), depth+1)
			continue
		}
		argv := make([]string, 0, len(words))
		for _, wd := range words {
			if wd.dynamic {
				argv = append(argv, "") // matches no file
			} else {
				argv = append(argv, wd.text)
			}
		}
		w.command(argv, depth)
	}
	for _, sub := range lx.subs {
		w.shellLine(sub, depth+1)
	}
}

// shWord is a word of a shell command line after quote removal. A dynamic
// word depends on what only the running shell knows.
type shWord struct {
	text    string
	dynamic bool
}

// shLexer splits a POSIX shell command line into simple commands, well
// enough to find what they run: quotes, backslashes, $NAME and ${NAME} from
// the environment, ~, comments, redirections (their targets are not
// commands), here-documents, and the command lines inside $(...) and
// `...`, which go to subs.
type shLexer struct {
	s    string
	i    int
	vars map[string]string
	subs []string

	cmds    [][]shWord
	cur     []shWord
	word    strings.Builder
	inWord  bool
	dynamic bool
	skip    bool     // the word being read is a redirection's target
	heredoc []string // delimiters of here-documents that start at the next newline
}

func (l *shLexer) endWord() {
	if l.inWord {
		if !l.skip {
			l.cur = append(l.cur, shWord{text: l.word.String(), dynamic: l.dynamic})
		}
		l.skip = false
	}
	l.word.Reset()
	l.inWord, l.dynamic = false, false
}

func (l *shLexer) endCommand() {
	l.endWord()
	if len(l.cur) > 0 {
		l.cmds = append(l.cmds, l.cur)
	}
	l.cur = nil
}

func (l *shLexer) commands() [][]shWord {
	for l.i < len(l.s) {
		c := l.s[l.i]
		switch {
		case c == ' ' || c == '\t':
			l.endWord()
			l.i++
		case c == '\n':
			l.endCommand()
			l.i++
			l.skipHeredocs()
		case c == ';' || c == '&' || c == '|' || c == '(' || c == ')':
			l.endCommand()
			l.i++
		case c == '<' || c == '>':
			l.redirection()
		case c == '#' && !l.inWord:
			for l.i < len(l.s) && l.s[l.i] != '\n' {
				l.i++
			}
		case c == '\'':
			l.inWord = true
			end := strings.IndexByte(l.s[l.i+1:], '\'')
			if end < 0 {
				end = len(l.s) - l.i - 1
			}
			l.word.WriteString(l.s[l.i+1 : l.i+1+end])
			l.i += end + 2
		case c == '"':
			l.inWord = true
			l.i++
			l.doubleQuoted()
		case c == '\\':
			l.i++
			if l.i < len(l.s) {
				if l.s[l.i] != '\n' {
					l.inWord = true
					l.word.WriteByte(l.s[l.i])
				}
				l.i++
			}
		case c == '$':
			l.inWord = true
			l.dollar()
		case c == '`':
			l.inWord = true
			l.backquoted()
		case c == '~' && !l.inWord:
			l.inWord = true
			l.i++
			if l.i >= len(l.s) || l.s[l.i] == '/' || l.s[l.i] == ' ' || l.s[l.i] == '\t' {
				l.word.WriteString(l.vars["HOME"])
			} else {
				l.word.WriteByte('~')
				l.dynamic = true // ~user
			}
		case c == '*' || c == '?' || c == '[':
			l.inWord = true
			l.dynamic = true
			l.word.WriteByte(c)
			l.i++
		default:
			l.inWord = true
			l.word.WriteByte(c)
			l.i++
		}
	}
	l.endCommand()
	return l.cmds
}

// redirection reads <, >, >>, >&, <<, <<- and the like; the word that
// follows is a file or a descriptor, not a command's word. A word of
// digits just before it is the descriptor redirected (2>&1).
func (l *shLexer) redirection() {
	if l.inWord && !l.dynamic && strings.Trim(l.word.String(), "0123456789") == "" {
		l.word.Reset()
		l.inWord = false
	}
	l.endWord()
	start := l.i
	for l.i < len(l.s) && strings.IndexByte("<>&|-", l.s[l.i]) >= 0 {
		l.i++
	}
	op := l.s[start:l.i]
	for l.i < len(l.s) && (l.s[l.i] == ' ' || l.s[l.i] == '\t') {
		l.i++
	}
	if strings.HasPrefix(op, "<<") && !strings.HasPrefix(op, "<<<") {
		// The delimiter, without its quotes.
		j := l.i
		for j < len(l.s) && strings.IndexByte(" \t\n;&|<>()", l.s[j]) < 0 {
			j++
		}
		l.heredoc = append(l.heredoc, strings.NewReplacer(`'`, "", `"`, "", `\`, "").Replace(l.s[l.i:j]))
		l.i = j
		return
	}
	l.skip = true
}

// skipHeredocs moves past the bodies of the here-documents begun on the
// line just ended.
func (l *shLexer) skipHeredocs() {
	for _, delim := range l.heredoc {
		for l.i < len(l.s) {
			end := strings.IndexByte(l.s[l.i:], '\n')
			line := l.s[l.i:]
			if end >= 0 {
				line = l.s[l.i : l.i+end]
				l.i += end + 1
			} else {
				l.i = len(l.s)
			}
			if strings.TrimLeft(line, "\t") == delim {
				break
			}
		}
	}
	l.heredoc = nil
}

func (l *shLexer) doubleQuoted() {
	for l.i < len(l.s) {
		c := l.s[l.i]
		switch c {
		case '"':
			l.i++
			return
		case '\\':
			if l.i+1 < len(l.s) && strings.IndexByte("$`\"\\\n", l.s[l.i+1]) >= 0 {
				if l.s[l.i+1] != '\n' {
					l.word.WriteByte(l.s[l.i+1])
				}
				l.i += 2
				continue
			}
			l.word.WriteByte(c)
			l.i++
		case '$':
			l.dollar()
		case '`':
			l.backquoted()
		default:
			l.word.WriteByte(c)
			l.i++
		}
	}
}

var nameRE = lazyRegexp(`^[A-Za-z_][A-Za-z0-9_]*`)

// dollar reads an expansion at l.i ('$').
func (l *shLexer) dollar() {
	rest := l.s[l.i+1:]
	switch {
	case strings.HasPrefix(rest, "(("):
		l.dynamic = true
		l.i += 1 + len(balanced(rest, '(', ')'))
	case strings.HasPrefix(rest, "("):
		l.dynamic = true
		b := balanced(rest, '(', ')')
		l.subs = append(l.subs, strings.TrimSuffix(b[1:], ")"))
		l.i += 1 + len(b)
	case strings.HasPrefix(rest, "{"):
		b := balanced(rest, '{', '}')
		l.i += 1 + len(b)
		name := strings.TrimSuffix(b[1:], "}")
		if v, ok := l.vars[name]; ok && nameRE().FindString(name) == name {
			l.word.WriteString(v)
		} else {
			l.dynamic = true
		}
	default:
		name := nameRE().FindString(rest)
		switch {
		case name != "":
			l.i += 1 + len(name)
			if v, ok := l.vars[name]; ok {
				l.word.WriteString(v)
			} else {
				l.dynamic = true
			}
		case rest != "" && strings.IndexByte("0123456789@*#?$!-", rest[0]) >= 0:
			l.dynamic = true
			l.i += 2
		default:
			l.word.WriteByte('$')
			l.i++
		}
	}
}

func (l *shLexer) backquoted() {
	end := strings.IndexByte(l.s[l.i+1:], '`')
	if end < 0 {
		end = len(l.s) - l.i - 1
	}
	l.subs = append(l.subs, l.s[l.i+1:l.i+1+end])
	l.dynamic = true
	l.i += end + 2
}

// balanced returns the prefix of s from its opening bracket to the one
// that closes it (or all of s), skipping quoted text.
func balanced(s string, open, close byte) string {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case open:
			depth++
		case close:
			depth--
			if depth == 0 {
				return s[:i+1]
			}
		case '\'':
			if j := strings.IndexByte(s[i+1:], '\''); j >= 0 {
				i += j + 1
			}
		case '\\':
			i++
		}
	}
	return s
}
