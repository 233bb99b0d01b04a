package appdb

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"golang.org/x/sys/unix"
)

// formatVersion is the rules file format this package reads and writes.
const formatVersion = 1

var (
	topKeys   = []string{"version", "settings", "app"}
	idRE      = lazyRegexp(`^[a-z0-9._-]+$`)
	envNameRE = lazyRegexp(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// document is one parsed and validated rules file.
type document struct {
	name     string
	data     []byte
	pos      *positions
	settings Settings
	setKeys  map[string]bool // settings keys the file sets
	rules    []Rule
	globs    map[string]*regexp.Regexp
	blocks   []block // one per [[app]] header, in file order
	inline   bool    // apps written as app = [...], not [[app]]
	problems Errors
}

// block is the byte range of one [[app]] table, with its sub-tables.
type block struct {
	id         string
	start, end int
}

func (d *document) problem(warning bool, line int, app, key, format string, args ...any) {
	d.problems = append(d.problems, Error{
		File: d.name, Line: line, App: app, Key: key,
		Reason: fmt.Sprintf(format, args...), Warning: warning,
	})
}

// errs returns the document's errors (not its warnings), or nil.
func (d *document) errs() error {
	if errs, _ := d.problems.split(); len(errs) > 0 {
		return errs
	}
	return nil
}

// parse decodes and validates a rules file. It never fails as such: the
// problems it finds are in document.problems.
func parse(name string, data []byte) *document {
	d := &document{
		name: name, data: data, settings: DefaultSettings(),
		setKeys: map[string]bool{}, globs: map[string]*regexp.Regexp{},
	}
	var raw map[string]any
	if err := toml.Unmarshal(data, &raw); err != nil {
		line, reason := 0, err.Error()
		var de *toml.DecodeError
		if errors.As(err, &de) {
			line, _ = de.Position()
		}
		d.problem(false, line, "", "", "%s", strings.TrimPrefix(reason, "toml: "))
		return d
	}
	d.pos = indexPositions(data)

	for _, k := range sortedKeys(raw, d.pos, "") {
		if !slices.Contains(topKeys, k) {
			d.problem(false, d.pos.line(k), "", k, "unknown key%s", didYouMean(k, topKeys))
		}
	}
	if v, ok := raw["version"]; ok {
		n, isInt := v.(int64)
		switch {
		case !isInt:
			d.problem(false, d.pos.line("version"), "", "version", "want an integer, got %s", typeName(v))
		case n != formatVersion:
			d.problem(false, d.pos.line("version"), "", "version", "unsupported version %d: this busmedic reads version %d", n, formatVersion)
		}
	}
	if v, ok := raw["settings"]; ok {
		if m, isTable := v.(map[string]any); isTable {
			d.parseSettings(m)
		} else {
			d.problem(false, d.pos.line("settings"), "", "settings", "want a table [settings], got %s", typeName(v))
		}
	}
	if v, ok := raw["app"]; ok {
		apps, isArray := v.([]any)
		if !isArray {
			d.problem(false, d.pos.line("app"), "", "app", "want an array of tables (write [[app]]), got %s", typeName(v))
		}
		firstLine := map[string]int{}
		var rulePaths []string // of d.rules, for their keys' lines
		for i, a := range apps {
			path := indexPath("app", i)
			m, isTable := a.(map[string]any)
			if !isTable {
				d.problem(false, d.pos.line(path), "", "app", "each app must be a table, got %s", typeName(a))
				continue
			}
			r, ok := d.parseApp(path, m)
			if r.ID != "" {
				if l, dup := firstLine[r.ID]; dup {
					d.problem(false, d.pos.line(joinPath(path, "id")), r.ID, "id", "duplicate id %q (first defined at line %d)", r.ID, l)
					ok = false
				} else {
					firstLine[r.ID] = r.Line
				}
			}
			if ok {
				d.rules = append(d.rules, r)
				rulePaths = append(rulePaths, path)
			}
		}
		d.warnOverlaps(rulePaths)
		d.findBlocks(apps)
	}
	d.problems.sort()
	return d
}

// findBlocks records the byte range of each [[app]] table, so that the
// editing API can replace or remove it and keep everything else.
func (d *document) findBlocks(apps []any) {
	hs := d.pos.headers
	for i, h := range hs {
		if !h.array || !strings.HasPrefix(h.path, "app[") || strings.Contains(h.path, ".") {
			continue
		}
		end := len(d.data)
		for _, next := range hs[i+1:] {
			if !strings.HasPrefix(next.path, h.path+".") {
				end = next.start
				break
			}
		}
		end = trimAttached(d.data, h.start, end)
		var id string
		if n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(h.path, "app["), "]")); err == nil && n < len(apps) {
			if m, ok := apps[n].(map[string]any); ok {
				id, _ = m["id"].(string)
			}
		}
		d.blocks = append(d.blocks, block{id: id, start: h.start, end: end})
	}
	d.inline = len(apps) > 0 && len(d.blocks) == 0
}

// trimAttached moves end back over blank lines and over the comment lines
// that directly precede the next header (they belong to it).
func trimAttached(data []byte, start, end int) int {
	lines := strings.SplitAfter(string(data[start:end]), "\n")
	if len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	keep := len(lines)
	for keep > 1 {
		t := strings.TrimSpace(lines[keep-1])
		if t != "" && !strings.HasPrefix(t, "#") {
			break
		}
		keep--
	}
	n := start
	for _, l := range lines[:keep] {
		n += len(l)
	}
	return n
}

// sortedKeys returns the keys of a table in the order they appear in the file.
func sortedKeys(m map[string]any, ps *positions, base string) []string {
	keys := slices.Sorted(maps.Keys(m))
	slices.SortStableFunc(keys, func(a, b string) int {
		return ps.line(joinPath(base, a)) - ps.line(joinPath(base, b))
	})
	return keys
}

// parseSettings decodes the [settings] table, key by key in file order,
// and records which keys the file sets.
func (d *document) parseSettings(m map[string]any) {
	a := &tableParser{d: d, path: "settings", m: m, keyPrefix: "settings.", ok: true}
	for _, k := range sortedKeys(m, d.pos, "settings") {
		i := slices.Index(settingKeyNames, k)
		if i < 0 {
			a.fail(k, "unknown key%s", didYouMean(k, settingKeyNames))
			continue
		}
		if settingKeys[i].field.parse(a, k, &d.settings) {
			d.setKeys[k] = true
		}
	}
}

// tableParser validates the keys of one table: an [[app]], or [settings].
type tableParser struct {
	d    *document
	path string // the table's, such as "app[2]" or "settings"
	m    map[string]any
	// app is the id of the [[app]] whose keys are read, as soon as it is
	// known, for its problems to name; "" in [settings].
	app string
	// keyPrefix comes before a key's name in its problems: "settings."
	// in [settings], where the key is named by its path.
	keyPrefix string
	r         *Rule // the rule being read, for the checks of its keys together; nil in [settings]
	ok        bool
}

func (a *tableParser) line(key string) int {
	if l := a.d.pos.line(joinPath(a.path, key)); l > 0 {
		return l
	}
	return a.d.pos.line(a.path)
}

func (a *tableParser) fail(key, format string, args ...any) {
	a.d.problem(false, a.line(key), a.app, a.keyPrefix+key, format, args...)
	a.ok = false
}

func (a *tableParser) warn(key, format string, args ...any) {
	a.d.problem(true, a.line(key), a.app, a.keyPrefix+key, format, args...)
}

func (a *tableParser) str(key string) (string, bool) {
	v, ok := a.m[key]
	if !ok {
		return "", false
	}
	s, isStr := v.(string)
	if !isStr {
		a.fail(key, "want a string, got %s", typeName(v))
		return "", false
	}
	return s, true
}

func (a *tableParser) boolean(key string) (bool, bool) {
	v, ok := a.m[key]
	if !ok {
		return false, false
	}
	b, isBool := v.(bool)
	if !isBool {
		a.fail(key, "want true or false, got %s", typeName(v))
		return false, false
	}
	return b, true
}

func (a *tableParser) list(key string) ([]string, bool) {
	v, ok := a.m[key]
	if !ok {
		return nil, false
	}
	arr, isArr := v.([]any)
	if !isArr {
		a.fail(key, "want a list of strings, got %s", typeName(v))
		return nil, false
	}
	out := make([]string, 0, len(arr))
	for i, e := range arr {
		s, isStr := e.(string)
		if !isStr {
			a.fail(key, "element %d: want a string, got %s", i+1, typeName(e))
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

// duration returns the reader of a duration key; zeroOK lets it be "0s".
func duration(zeroOK bool) func(a *tableParser, key string) (time.Duration, bool) {
	return func(a *tableParser, key string) (time.Duration, bool) {
		v, ok := a.m[key]
		if !ok {
			return 0, false
		}
		s, isStr := v.(string)
		if !isStr {
			a.fail(key, `want a duration string such as "2s" or "1m30s", got %s`, typeName(v))
			return 0, false
		}
		d, err := time.ParseDuration(s)
		switch {
		case err != nil:
			a.fail(key, `bad duration %q: want a number and a unit such as "500ms", "2s" or "1m"`, s)
		case d < 0 || (d == 0 && !zeroOK):
			a.fail(key, "duration %q must be more than zero", s)
		default:
			return d, true
		}
		return 0, false
	}
}

// wholeNumber returns the reader of an integer key that must lie between
// lo and hi; what is what the problems call it, such as "a whole number".
func wholeNumber(what string, lo, hi int64) func(a *tableParser, key string) (int, bool) {
	return func(a *tableParser, key string) (int, bool) {
		v, ok := a.m[key]
		if !ok {
			return 0, false
		}
		n, isInt := v.(int64)
		if !isInt || n < lo || n > hi {
			a.fail(key, "want %s from %d to %d, got %s", what, lo, hi, describe(v))
			return 0, false
		}
		return int(n), true
	}
}

// oneOf returns the reader of a key that takes one of choices; a value
// that is no string is reported as such.
func oneOf(choices []string) func(a *tableParser, key string) (string, bool) {
	choice := anyOf(choices)
	return func(a *tableParser, key string) (string, bool) {
		if _, ok := a.str(key); !ok {
			return "", false
		}
		return choice(a, key)
	}
}

// anyOf returns the reader of a key that takes one of choices; any other
// value, a string or not, is reported with the choices.
func anyOf(choices []string) func(a *tableParser, key string) (string, bool) {
	quoted := make([]string, len(choices))
	for i, c := range choices {
		quoted[i] = strconv.Quote(c)
	}
	last := len(quoted) - 1
	want := strings.Join(quoted[:last], ", ") + " or " + quoted[last]
	return func(a *tableParser, key string) (string, bool) {
		v, ok := a.m[key]
		if !ok {
			return "", false
		}
		s, isStr := v.(string)
		if !isStr || !slices.Contains(choices, s) {
			a.fail(key, "want %s, got %s", want, describe(v))
			return "", false
		}
		return s, true
	}
}

func (a *tableParser) busNames(key string) ([]string, bool) {
	names, ok := a.list(key)
	if !ok {
		return nil, false
	}
	for _, n := range names {
		if err := checkBusName(n); err != nil {
			a.fail(key, "bad bus name %q: %v", n, err)
		}
	}
	return names, true
}

func (a *tableParser) glob(key string) (string, bool) {
	s, ok := a.str(key)
	if !ok {
		return "", false
	}
	re, err := compileGlob(s)
	if err != nil {
		a.fail(key, "bad pattern %q: %v", s, err)
		return "", false
	}
	a.d.globs[s] = re
	return s, true
}

func (a *tableParser) argv(key string) ([]string, bool) {
	argv, ok := a.list(key)
	if !ok {
		return nil, false
	}
	if len(argv) == 0 || argv[0] == "" {
		a.fail(key, "want a command: a list whose first element names the program")
		return nil, false
	}
	return argv, true
}

// id keeps even a malformed id, and makes it the app of the problems at
// once, so that every problem of the rule, this one included, can name it.
func (a *tableParser) id(key string) (string, bool) {
	id, ok := a.str(key)
	if ok {
		a.app = id
		if !idRE().MatchString(id) {
			a.fail(key, "bad id %q: use only a-z, 0-9, '.', '_' and '-'", id)
		}
	}
	if _, present := a.m[key]; !present {
		a.fail(key, "missing: every app needs an id")
	}
	return id, ok
}

func (a *tableParser) icon(key string) (string, bool) {
	icon, ok := a.str(key)
	if ok && strings.Contains(icon, "/") && !filepath.IsAbs(icon) {
		a.fail(key, "icon %q: want an icon name or an absolute path", icon)
	}
	return icon, ok
}

func (a *tableParser) desktop(key string) (string, bool) {
	desk, ok := a.str(key)
	if ok && (desk == "" || strings.Contains(desk, "/")) {
		a.fail(key, "desktop %q: want a desktop-file id such as \"dunst.desktop\"", desk)
	}
	return desk, ok
}

func (a *tableParser) exe(key string) (string, bool) {
	exe, ok := a.str(key)
	if ok && !filepath.IsAbs(exe) {
		a.fail(key, "exe %q: want an absolute path such as /usr/bin/dunst", exe)
	}
	return exe, ok
}

func (a *tableParser) workdir(key string) (string, bool) {
	wd, ok := a.str(key)
	if ok && !filepath.IsAbs(wd) {
		a.fail(key, "workdir %q: want an absolute path", wd)
	}
	return wd, ok
}

// signal normalises the signal's name, such as "hup" to "SIGHUP".
func (a *tableParser) signal(key string) (string, bool) {
	sig, ok := a.str(key)
	if !ok {
		return "", false
	}
	n := normalizeSignal(sig)
	if n == "" {
		a.fail(key, "unknown signal %q: want a name such as \"SIGHUP\" or \"USR1\"", sig)
		return "", false
	}
	return n, true
}

// env keeps the variables that are well formed, and reports each of the
// others under its own key, such as env.LANG.
func (a *tableParser) env(key string) (map[string]string, bool) {
	v, ok := a.m[key]
	if !ok {
		return nil, false
	}
	table, isTable := v.(map[string]any)
	if !isTable {
		a.fail(key, "want a table of strings, such as env = { LANG = \"C\" }, got %s", typeName(v))
	}
	var env map[string]string
	for _, k := range sortedKeys(table, a.d.pos, joinPath(a.path, key)) {
		sub := joinPath(key, k)
		s, isStr := table[k].(string)
		switch {
		case !envNameRE().MatchString(k):
			a.fail(sub, "bad environment variable name %q", k)
		case !isStr:
			a.fail(sub, "want a string, got %s", typeName(table[k]))
		default:
			if env == nil {
				env = map[string]string{}
			}
			env[k] = s
		}
	}
	return env, env != nil
}

// parseApp decodes one [[app]] table. It reports whether the rule is valid.
func (d *document) parseApp(path string, m map[string]any) (Rule, bool) {
	r := NewRule("")
	r.Source, r.Line = d.name, d.pos.line(path)
	a := &tableParser{d: d, path: path, m: m, r: &r, ok: true}
	// ruleKeys begins with id, so that every later problem names the app.
	for _, k := range ruleKeys {
		k.field.parse(a, k.Name, &r)
	}
	for _, k := range sortedKeys(m, d.pos, path) {
		if !slices.Contains(ruleKeyNames, k) {
			a.fail(k, "unknown key%s", didYouMean(k, ruleKeyNames))
		}
	}
	d.crossCheck(a)
	return r, a.ok
}

// crossCheck looks at keys together: what an action needs, what a command
// looks like. A disabled entry needs only its id, so that a user can switch
// off a system rule with two lines.
func (d *document) crossCheck(a *tableParser) {
	r := a.r
	if r.Enabled {
		if len(r.Names) == 0 && r.Exe == "" && r.Argv0 == "" && r.Cmdline == "" {
			given := false
			for _, k := range []string{"names", "exe", "argv0", "cmdline"} {
				_, in := a.m[k]
				given = given || in
			}
			if !given || a.ok {
				a.fail("names", "no matcher: give at least one of names, exe, argv0 or cmdline")
			}
		}
		switch r.Action {
		case ActionSignal:
			if _, given := a.m["signal"]; !given {
				a.fail("signal", `action "signal" needs a signal, such as signal = "SIGHUP"`)
			}
		case ActionHook:
			if _, given := a.m["hook"]; !given {
				a.fail("hook", `action "hook" needs a hook command, such as hook = ["/usr/bin/foo", "--reconnect"]`)
			}
		}
	}
	if r.Action == ActionKeep {
		// The keeper stands between the app and the session bus; the
		// system bus's policy keys on the connecting uid and pid, which a
		// proxy would hide.
		if r.Bus != BusSession {
			a.fail("bus", `action "keep" works on the session bus only (bus is %q): the system bus's policy decides by the connecting process, which the keeper would hide`, r.Bus)
		}
		if r.Unit != "" {
			a.fail("unit", `action "keep" cannot go with unit: systemd starts the unit's ExecStart itself, which busmedic cannot wrap in "busmedic keep"; leave unit out (busmedic then starts the app), or keep it by hand with ExecStart=busmedic keep -- COMMAND`)
		}
	}
	if r.Signal != "" && r.Action != ActionSignal {
		a.warn("signal", "signal is used only with action = \"signal\" (action is %q)", r.Action)
	}
	if r.Hook != nil && r.Action != ActionHook {
		a.warn("hook", "hook is used only with action = \"hook\" (action is %q)", r.Action)
	}
	if r.Shell && len(r.Exec) != 1 {
		a.fail("exec", "with shell = true, exec must hold exactly one command line for /bin/sh -c")
	}
	if !r.Shell && len(r.Exec) > 0 {
		checkProgram(a, "exec", r.Exec[0])
	}
	if len(r.Hook) > 0 {
		checkProgram(a, "hook", r.Hook[0])
		checkSafety(a, "hook", r.Hook)
	}
	switch {
	case r.Shell && len(r.Exec) == 1:
		checkSafety(a, "exec", []string{"/bin/sh", "-c", r.Exec[0]})
	case !r.Shell && len(r.Exec) > 0:
		checkSafety(a, "exec", r.Exec)
	}
}

// checkSafety warns about each file the command would run that someone
// other than the user or root could change (see CommandFiles and
// CheckPath): busmedic refuses to run it until it is fixed. The command is
// looked at as the engine will run it: in the rule's workdir (else the
// home directory), with the rule's env over ours.
func checkSafety(a *tableParser, key string, argv []string) {
	env := os.Environ()
	for _, k := range slices.Sorted(maps.Keys(a.r.Env)) {
		env = append(env, k+"="+a.r.Env[k])
	}
	dir := a.r.Workdir
	if !filepath.IsAbs(dir) {
		dir, _ = os.UserHomeDir()
	}
	for _, f := range CommandFiles(argv, dir, env) {
		var ue *UnsafeError
		if err := CheckPath(f.Path); errors.As(err, &ue) {
			a.warn(key, "%s: %s: busmedic will refuse to run it; fix with: %s", f.Role(), ue.What(), ue.Fix)
		}
	}
}

// checkProgram warns when a command's program cannot be found: it may be
// installed later, or found in the PATH the engine runs with.
func checkProgram(a *tableParser, key, prog string) {
	if strings.Contains(prog, "/") && !filepath.IsAbs(prog) {
		a.fail(key, "program %q: want an absolute path or a name looked up in PATH", prog)
		return
	}
	if _, err := exec.LookPath(prog); err != nil {
		a.warn(key, "program %q not found: %v", prog, unwrapAll(err))
	}
}

func unwrapAll(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

// normalizeSignal turns "hup", "HUP" or "SIGHUP" into "SIGHUP"; it returns
// "" for an unknown signal.
func normalizeSignal(s string) string {
	n := strings.ToUpper(strings.TrimSpace(s))
	if !strings.HasPrefix(n, "SIG") {
		n = "SIG" + n
	}
	if unix.SignalNum(n) == 0 {
		return ""
	}
	return n
}

// checkBusName checks a well-known bus name against the D-Bus grammar.
func checkBusName(name string) error {
	switch {
	case name == "":
		return errors.New("empty")
	case len(name) > 255:
		return errors.New("longer than 255 characters")
	case strings.HasPrefix(name, ":"):
		return errors.New("a unique name (starting with ':') changes on every connection; give a well-known name")
	}
	elems := strings.Split(name, ".")
	if len(elems) < 2 {
		return errors.New("want at least two elements separated by '.', such as org.example.App")
	}
	for _, e := range elems {
		if e == "" {
			return errors.New("empty element")
		}
		for i, c := range e {
			letter := c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c == '_' || c == '-'
			digit := c >= '0' && c <= '9'
			switch {
			case i == 0 && digit:
				return fmt.Errorf("element %q starts with a digit", e)
			case !letter && !digit:
				return fmt.Errorf("character %q is not allowed", c)
			}
		}
	}
	return nil
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "a table"
	case nil:
		return "nothing"
	default:
		return "a date or time"
	}
}

// describe shows a scalar value, or the type of anything else.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case int64, bool, float64:
		return fmt.Sprint(x)
	default:
		return typeName(v)
	}
}
