package appdb

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"busmedic/watcher"
)

// interpreterRE matches programs that run a script: their exe says nothing
// about which app they run.
var interpreterRE = lazyRegexp(`^(python[0-9.]*|perl[0-9.]*|ruby[0-9.]*|node|nodejs|gjs|lua[0-9.]*|sh|bash|dash|zsh|ksh|mksh|java)$`)

// inlineFlag is the option after which the interpreter prog takes its
// program on the command line ("bash -c CODE", "perl -e CODE").
func inlineFlag(prog string) string {
	switch strings.TrimRight(prog, "0123456789.") {
	case "perl", "ruby", "node", "nodejs", "lua":
		return "-e"
	}
	return "-c" // the shells, python, gjs
}

// scriptKind is what an interpreter runs, as its command line tells.
type scriptKind int

const (
	notScript  scriptKind = iota // a program of its own, no interpreter
	scriptFile                   // a script file that stays
	tempScript                   // a script file in a temporary directory
	fdScript                     // a script read from a file descriptor (bash /dev/fd/3, bash <(...))
	inlineCode                   // a program given on the command line (bash -c CODE)
	noScript                     // an interpreter with no script: interactive, or reading its input
)

// process is what a peer's command line says about the app behind it.
type process struct {
	exe    string // the executable, without " (deleted)"
	prog   string // the executable's base name
	kind   scriptKind
	script string // the script, for scriptFile, tempScript and fdScript; the code for inlineCode
}

func classify(p watcher.Peer) process {
	pr := process{exe: strings.TrimSuffix(p.Exe, " (deleted)")}
	switch {
	case pr.exe != "":
		pr.prog = path.Base(pr.exe)
	case len(p.Argv) > 0:
		pr.prog = path.Base(p.Argv[0])
	}
	if !interpreterRE().MatchString(pr.prog) {
		return pr
	}
	pr.kind = noScript
	args := p.Argv[min(1, len(p.Argv)):]
	for i, a := range args {
		if a == inlineFlag(pr.prog) && i+1 < len(args) {
			pr.kind, pr.script = inlineCode, args[i+1]
			return pr
		}
		if !strings.HasPrefix(a, "-") {
			pr.script = a
			break
		}
	}
	switch {
	case pr.script == "":
	case isFDPath(pr.script):
		pr.kind = fdScript
	case isTempPath(pr.script):
		pr.kind = tempScript
	default:
		pr.kind = scriptFile
	}
	return pr
}

// fdPathRE matches the paths through which a shell hands a script over a
// file descriptor: "bash <(curl ...)" runs "bash /dev/fd/63".
var fdPathRE = lazyRegexp(`^(/dev/fd/[0-9]+|/proc/(self|[0-9]+)/fd/[0-9]+|/dev/stdin)$`)

func isFDPath(p string) bool { return fdPathRE().MatchString(p) }

// isTempPath reports whether p lies in a directory that is cleared at boot
// or by age: /tmp, /var/tmp, /dev/shm, $TMPDIR.
func isTempPath(p string) bool {
	for _, dir := range []string{"/tmp", "/var/tmp", "/dev/shm", os.TempDir()} {
		if dir != "" && dir != "/" && strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/") {
			return true
		}
	}
	return false
}

// name is the app's name as the command line tells it: the script's for a
// script file, the first program of inline code, else the program's; ""
// when nothing tells (a script read from a descriptor, an interpreter with
// no script).
func (pr process) name() string {
	switch pr.kind {
	case scriptFile, tempScript:
		return strings.TrimSuffix(path.Base(pr.script), path.Ext(pr.script))
	case inlineCode:
		return commandWord(pr.script)
	case fdScript, noScript:
		return ""
	}
	return pr.prog
}

// shellWords are the words of a shell command line that come before the
// program it runs.
var shellWords = []string{"exec", "env", "nohup", "setsid", "command", "builtin", "nice", "while", "until", "if", "for", "do", "then", "else", "!", "{", "("}

// commandWord returns the base name of the first program inline shell code
// runs: "sleep" for "exec sleep 60", "" if none is plain to see.
func commandWord(code string) string {
	words := strings.FieldsFunc(code, func(r rune) bool { return strings.ContainsRune(" \t\n;&|(){}", r) })
	for _, w := range words {
		if slices.Contains(shellWords, w) || strings.HasPrefix(w, "-") ||
			strings.Contains(w, "=") && !strings.Contains(w[:strings.Index(w, "=")], "/") {
			continue
		}
		return path.Base(strings.Trim(w, `"'`))
	}
	return ""
}

// nameFromBus is a name for an app from the first of its well-known names:
// its last element ("Tray" for org.example.Tray).
func nameFromBus(names []string) string {
	for _, n := range names {
		if checkBusName(n) == nil {
			return n[strings.LastIndexByte(n, '.')+1:]
		}
	}
	return ""
}

// nameFromUnit is a name for an app from its user service:
// "app-dunst@autostart.service" and "dunst.service" give "dunst".
func nameFromUnit(unit string) string {
	base, ok := strings.CutSuffix(unit, ".service")
	if !ok {
		return ""
	}
	base, _, _ = strings.Cut(base, "@")
	return strings.TrimPrefix(base, "app-")
}

// FromPeer suggests a rule that relaunches the app behind a live peer: its
// well-known names, its executable, its command line as exec and its working
// directory, and the systemd user service it runs in (Peer.Unit) unless
// that is busmedic's own. The id comes from the program's name. For a script
// run by an interpreter (python3, gjs, bash...) the rule matches the names
// the script owns, or, when it owns none, the exact command line, instead of
// the interpreter's exe; its id comes from the script's name, or, when the
// script has none that lasts (bash /dev/fd/3), from its bus names or its
// service. The rule is not validated: check it with Rule.Validate, or let
// File.AddOrReplace do so.
func FromPeer(p watcher.Peer) Rule {
	pr := classify(p)
	var names []string
	for _, n := range p.Names {
		if checkBusName(n) == nil {
			names = append(names, n)
		}
	}
	unit := ""
	// An app in a user service of its own is started again through
	// systemd. Not in busmedic's: that is where the apps busmedic started
	// itself run, and restarting it would restart busmedic.
	if p.Unit != "" && !IsBusmedicUnit(p.Unit) && checkUnitName(p.Unit) == nil {
		unit = p.Unit
	}
	name := cmp.Or(pr.name(), nameFromBus(names), nameFromUnit(unit), pr.prog)
	r := NewRule(sanitizeID(name))
	r.Name = name
	r.Names = names
	r.Unit = unit
	switch {
	case pr.kind != notScript && len(names) > 0:
		// The names tell the app; the command line of a script may
		// change with its arguments.
	case pr.kind != notScript:
		r.Cmdline = quoteGlob(strings.Join(p.Argv, " "))
	case pr.exe != "":
		r.Exe = pr.exe
	case len(p.Argv) > 0 && p.Argv[0] != "":
		r.Argv0 = quoteGlob(path.Base(p.Argv[0]))
	}
	switch {
	case len(p.Argv) > 0:
		r.Exec = slices.Clone(p.Argv)
	case pr.exe != "":
		r.Exec = []string{pr.exe}
	}
	if len(r.Exec) > 0 && strings.Contains(r.Exec[0], "/") && !path.IsAbs(r.Exec[0]) && pr.exe != "" {
		r.Exec[0] = pr.exe // started as ./prog: relative to a directory we may not know
	}
	// A directory removed since is no place to start again in: the
	// relaunch starts in the home directory instead.
	if !strings.HasSuffix(p.Cwd, " (deleted)") {
		r.Workdir = p.Cwd
	}
	return r
}

// Process returns the running process pid as FromProcess reads it from
// /proc, for Learn. It must be the current user's (busmedic only restarts
// the user's own apps), with a command line or an executable to read.
func Process(pid int) (watcher.Peer, error) {
	p, err := watcher.ProcessInfo(pid)
	switch {
	case errors.Is(err, fs.ErrNotExist) || pid <= 0:
		return p, fmt.Errorf("no process %d", pid)
	case err != nil:
		return p, err
	case p.UID >= 0 && p.UID != os.Getuid():
		return p, fmt.Errorf("pid %d runs as uid %d, not as you (uid %d); busmedic only restarts your own apps", pid, p.UID, os.Getuid())
	case p.Exe == "" && len(p.Argv) == 0:
		return p, fmt.Errorf("cannot read the command of pid %d", pid)
	}
	return p, nil
}

// FromProcess suggests a rule, as FromPeer does, that relaunches the
// running process pid, which must be the current user's: busmedic only
// restarts the user's own apps. The process is not looked up on a bus, so
// the rule names no bus names: it matches by executable, or by command
// line for a script. Like FromPeer's, the rule is not validated. Learn
// says, besides, what is doubtful about such a rule.
func FromProcess(pid int) (Rule, error) {
	p, err := Process(pid)
	if err != nil {
		return Rule{}, err
	}
	return FromPeer(p), nil
}

// Refusals of Learn, for errors.Is.
var (
	// ErrNoID: nothing tells which app the process is (a script read
	// from a descriptor that owns no bus name): the rule needs an id.
	ErrNoID = errors.New("appdb: no name for the rule")
	// ErrCannotRelaunch: a relaunch rule for the process could never
	// start it again (its script is gone once read).
	ErrCannotRelaunch = errors.New("appdb: the process cannot be started again")
)

// refusal is an error of Learn: errors.Is matches it with kind, its
// message is its own, without kind's words.
type refusal struct {
	kind error
	msg  string
}

func (r refusal) Error() string { return r.msg }
func (r refusal) Unwrap() error { return r.kind }

// Learn suggests the rule "busmedic rules add-from-pid" writes for the
// running process p (from Process, with in Names the well-known names it
// owns on its buses): FromPeer's rule, with id (if not "") and action. The
// warnings say what may keep the rule from working as meant; they name
// the rule's id and key, and the caller adds the file and line it writes
// the rule to. Learn refuses, with an error that wraps ErrNoID or
// ErrCannotRelaunch, a rule that could not work: one without an id where
// nothing tells the app's name, and a relaunch of a script that is gone
// once read (bash /dev/fd/3) or of a bare interpreter, unless a systemd
// service starts it.
func Learn(p watcher.Peer, id string, action Action) (Rule, Errors, error) {
	pr := classify(p)
	r := FromPeer(p)
	r.Action = action
	what := fmt.Sprintf("pid %d is %s", p.PID, strings.Join(p.Argv, " "))
	var gone string // why the command cannot be run again, if it cannot
	switch pr.kind {
	case fdScript:
		gone = fmt.Sprintf("%s, a script handed over a file descriptor, which is gone once read", what)
	case noScript:
		gone = fmt.Sprintf("%s, an interpreter that runs no script file (an interactive shell, or a script read from its input)", what)
	}
	if gone != "" && action == ActionRelaunch && r.Unit == "" {
		return Rule{}, nil, refusal{ErrCannotRelaunch, gone + ": a relaunch could not start it again; run the script from a file of its own"}
	}
	// A rules file is UTF-8 text: a command line, program or directory
	// with other bytes would be written with U+FFFD in their place, and
	// name something else.
	if !utf8.ValidString(p.Exe) || !utf8.ValidString(p.Cwd) || slices.ContainsFunc(p.Argv, func(a string) bool { return !utf8.ValidString(a) }) {
		return Rule{}, nil, fmt.Errorf("pid %d: its command line, program or directory has bytes that are not UTF-8 (%q), which a rules file cannot hold; write its rule by hand with a name that is", p.PID, strings.Join(p.Argv, " "))
	}
	if gone != "" && r.Name == pr.prog {
		// The interpreter's name is not the app's.
		if id == "" {
			return Rule{}, nil, refusal{ErrNoID, what + ", and owns no bus name: nothing tells which app it is"}
		}
		r.Name = ""
	}
	if id != "" {
		r.ID = id
	}
	var warns Errors
	warn := func(key, format string, args ...any) {
		warns = append(warns, Error{App: r.ID, Key: key, Reason: fmt.Sprintf(format, args...), Warning: true})
	}
	if gone != "" {
		if r.Unit == "" {
			warn("exec", "%s: relaunching it will fail", gone)
		}
		if len(r.Names) == 0 {
			warn("cmdline", "matches every process whose command line is %q, whatever it runs", strings.Join(p.Argv, " "))
		}
	}
	if pr.kind == tempScript && r.Unit == "" {
		dir := filepath.Dir(pr.script)
		warn("exec", "%s is in %s, which is cleared: relaunching it fails once the file is gone; keep the script in a lasting place (such as ~/.local/bin) and change exec", pr.script, dir)
	}
	return r, warns, nil
}

// sanitizeID turns a program name into an id: lower case, with every
// character outside [a-z0-9._-] replaced by '-'.
func sanitizeID(s string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' {
			b.WriteRune(c)
		} else {
			b.WriteByte('-')
		}
	}
	id := strings.Trim(b.String(), "-.")
	if id == "" {
		return "app"
	}
	return id
}
