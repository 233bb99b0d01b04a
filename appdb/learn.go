package appdb

import (
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"

	"busmedic/watcher"
)

// interpreterRE matches programs that run a script: their exe says nothing
// about which app they run.
var interpreterRE = regexp.MustCompile(`^(python[0-9.]*|perl[0-9.]*|ruby[0-9.]*|node|nodejs|gjs|lua[0-9.]*|sh|bash|dash|java)$`)

// FromPeer suggests a rule that relaunches the app behind a live peer: its
// well-known names, its executable, its command line as exec and its working
// directory, and the systemd user service it runs in (Peer.Unit) unless
// that is busmedic's own. The id comes from the program's name. For a script run by an
// interpreter (python3, gjs, ...) the rule matches the exact command line
// instead of the interpreter's exe. The rule is not validated: check it with
// Rule.Validate, or let File.AddOrReplace do so.
func FromPeer(p watcher.Peer) Rule {
	exe := strings.TrimSuffix(p.Exe, " (deleted)")
	prog := ""
	switch {
	case exe != "":
		prog = path.Base(exe)
	case len(p.Argv) > 0:
		prog = path.Base(p.Argv[0])
	}
	script := ""
	if interpreterRE.MatchString(prog) {
		for _, a := range p.Argv[min(1, len(p.Argv)):] {
			if !strings.HasPrefix(a, "-") {
				script = a
				break
			}
		}
	}
	name := prog
	if script != "" {
		name = strings.TrimSuffix(path.Base(script), path.Ext(script))
	}
	r := NewRule(sanitizeID(name))
	r.Name = name
	for _, n := range p.Names {
		if checkBusName(n) == nil {
			r.Names = append(r.Names, n)
		}
	}
	switch {
	case script != "":
		r.Cmdline = quoteGlob(strings.Join(p.Argv, " "))
	case exe != "":
		r.Exe = exe
	case len(p.Argv) > 0 && p.Argv[0] != "":
		r.Argv0 = quoteGlob(path.Base(p.Argv[0]))
	}
	switch {
	case len(p.Argv) > 0:
		r.Exec = slices.Clone(p.Argv)
	case exe != "":
		r.Exec = []string{exe}
	}
	if len(r.Exec) > 0 && strings.Contains(r.Exec[0], "/") && !path.IsAbs(r.Exec[0]) && exe != "" {
		r.Exec[0] = exe // started as ./prog: relative to a directory we may not know
	}
	r.Workdir = p.Cwd
	// An app in a user service of its own is started again through
	// systemd. Not in busmedic's: that is where the apps busmedic started
	// itself run, and restarting it would restart busmedic.
	if p.Unit != "" && !IsBusmedicUnit(p.Unit) && checkUnitName(p.Unit) == nil {
		r.Unit = p.Unit
	}
	return r
}

// FromProcess suggests a rule, as FromPeer does, that relaunches the
// running process pid, which must be the current user's: busmedic only
// restarts the user's own apps. The process is not looked up on a bus, so
// the rule names no bus names: it matches by executable, or by command
// line for a script. Like FromPeer's, the rule is not validated.
func FromProcess(pid int) (Rule, error) {
	p, err := watcher.ProcessInfo(pid)
	if err != nil {
		return Rule{}, err
	}
	if p.UID >= 0 && p.UID != os.Getuid() {
		return Rule{}, fmt.Errorf("pid %d runs as uid %d, not as you (uid %d); busmedic only restarts your own apps", pid, p.UID, os.Getuid())
	}
	if p.Exe == "" && len(p.Argv) == 0 {
		return Rule{}, fmt.Errorf("cannot read the command of pid %d", pid)
	}
	return FromPeer(p), nil
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
