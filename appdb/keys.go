package appdb

import (
	"slices"
	"time"
)

// RuleKey is one key of an [[app]] table. [RuleKeys] lists them all: the
// loader, FormatRule, WriteJSON ("busmedic rules list --json") and the
// rules editor read the keys from it, and tests check Rule, the editor and
// docs/rules.md against it, so that a key cannot be added in one place
// only.
type RuleKey struct {
	// Name is the key as apps.toml spells it; "busmedic rules list --json"
	// uses the same name.
	Name string
	// Hint says in a few words what the key is for; the rules editor shows
	// it beneath the key's field.
	Hint string
	// Choices are the values a key that takes one of a fixed set may take,
	// such as the buses; nil for any other key.
	Choices []string
	// Required is true for a key every rule must have (the id).
	Required bool

	field keyField[Rule]
	// absent is what docs/rules.md says a rule without the key gets, for an
	// optional key whose default is no value: "none", or where the value
	// comes from instead. Empty for a key with a default value.
	absent string
	// example is a value other than the default, in TOML, as the key's
	// row in docs/rules.md shows it.
	example string
	// alwaysWritten makes FormatRule write the key even when it holds its
	// default: a rule reads better with its action spelled out.
	alwaysWritten bool
}

// Value returns the key's value in r, as a string (for bus and action
// too), []string, bool, time.Duration, int or map[string]string.
func (k RuleKey) Value(r Rule) any { return k.field.get(r) }

// Default returns the value a rule that leaves the key out holds (the zero
// value of Value's type for a key without a default, such as exe).
func (k RuleKey) Default() any { return k.field.defaultValue() }

// RuleKeys returns the keys of an [[app]] table in the documented order.
func RuleKeys() []RuleKey {
	keys := slices.Clone(ruleKeys)
	for i := range keys {
		keys[i].Choices = slices.Clone(keys[i].Choices)
	}
	return keys
}

var (
	buses   = []string{string(BusSession), string(BusSystem), string(BusBoth)}
	actions = []string{string(ActionRelaunch), string(ActionSignal), string(ActionHook), string(ActionNotify), string(ActionIgnore), string(ActionKeep)}
)

// ruleKeys is the one list of the keys of an [[app]] table, in the order
// of docs/rules.md, which FormatRule writes and the editor shows. id comes
// first so that the loader knows the app's id before it reports any other
// problem. Bus and Action are held as their underlying string, so that one
// code path serves every text key.
var ruleKeys = []RuleKey{
	{Name: "id", Hint: "a-z, 0-9, '.', '_', '-'; unique in the file (a renamed rule moves to the end of the file)",
		Required: true, example: `"dunst"`,
		field: field[Rule, string]{of: func(r *Rule) *string { return &r.ID }, read: (*tableParser).id}},
	{Name: "name", Hint: "shown in the tray and here",
		absent: "the desktop file's name, else `id`", example: `"Dunst notifications"`,
		field: field[Rule, string]{of: func(r *Rule) *string { return &r.Name }, read: (*tableParser).str}},
	{Name: "icon", Hint: "an icon name or an absolute path",
		absent: "the desktop file's icon", example: `"preferences-system-notifications"`,
		field: field[Rule, string]{of: func(r *Rule) *string { return &r.Icon }, read: (*tableParser).icon}},
	{Name: "desktop", Hint: "desktop-file id, such as dunst.desktop",
		absent: "none", example: `"dunst.desktop"`,
		field: field[Rule, string]{of: func(r *Rule) *string { return &r.Desktop }, read: (*tableParser).desktop}},
	{Name: "bus", Hint: "the bus whose restart concerns the app", Choices: buses,
		example: `"system"`,
		field:   field[Rule, string]{of: func(r *Rule) *string { return (*string)(&r.Bus) }, def: string(DefaultBus), read: oneOf(buses)}},

	{Name: "names", Hint: "well-known bus names the app owns",
		absent: "none", example: `["org.freedesktop.Notifications"]`,
		field: field[Rule, []string]{of: func(r *Rule) *[]string { return &r.Names }, read: (*tableParser).busNames}},
	{Name: "exe", Hint: "absolute path of the executable",
		absent: "none", example: `"/usr/bin/dunst"`,
		field: field[Rule, string]{of: func(r *Rule) *string { return &r.Exe }, read: (*tableParser).exe}},
	{Name: "argv0", Hint: "glob for argv[0], such as xfce4-panel",
		absent: "none", example: `"xfce4-panel"`,
		field: field[Rule, string]{of: func(r *Rule) *string { return &r.Argv0 }, read: (*tableParser).glob}},
	{Name: "cmdline", Hint: "glob for the whole command line",
		absent: "none", example: `"python3 */blueman-tray*"`,
		field: field[Rule, string]{of: func(r *Rule) *string { return &r.Cmdline }, read: (*tableParser).glob}},

	{Name: "action", Hint: "what busmedic does once the bus is back; keep: the app keeps its connection through restarts (session bus)", Choices: actions,
		example: `"signal"`, alwaysWritten: true,
		field: field[Rule, string]{of: func(r *Rule) *string { return (*string)(&r.Action) }, def: string(DefaultAction), read: oneOf(actions)}},
	{Name: "signal", Hint: "for action signal, such as SIGHUP",
		absent: "none", example: `"SIGHUP"`,
		field: field[Rule, string]{of: func(r *Rule) *string { return &r.Signal }, read: (*tableParser).signal}},
	{Name: "hook", Hint: "for action hook: the command to run",
		absent: "none", example: `["/usr/bin/xfce4-panel", "--restart"]`,
		field: field[Rule, []string]{of: func(r *Rule) *[]string { return &r.Hook }, read: (*tableParser).argv}},

	{Name: "unit", Hint: "the systemd user service the app runs in; busmedic starts it through systemd",
		absent: "the user service the process ran in, if any", example: `"app-dunst@autostart.service"`,
		field: field[Rule, string]{of: func(r *Rule) *string { return &r.Unit }, read: (*tableParser).unit}},
	{Name: "exec", Hint: "the command that starts the app (default: the one it had)",
		absent:  "the desktop file's `Exec`, else the command line the process had",
		example: `["/usr/bin/dunst", "-config", "/home/ada/.config/dunst/dunstrc"]`,
		field:   field[Rule, []string]{of: func(r *Rule) *[]string { return &r.Exec }, read: (*tableParser).argv}},
	{Name: "shell", Hint: "run exec with /bin/sh -c (exec is then one line)",
		example: `true`,
		field:   field[Rule, bool]{of: func(r *Rule) *bool { return &r.Shell }, read: (*tableParser).boolean}},
	{Name: "env", Hint: "variables added to the environment",
		absent: "none", example: `{ LANG = "C.UTF-8", GDK_BACKEND = "x11" }`,
		field: field[Rule, map[string]string]{of: func(r *Rule) *map[string]string { return &r.Env }, read: (*tableParser).env}},
	{Name: "workdir", Hint: "absolute directory to start in",
		absent: "your home directory", example: `"/home/ada"`,
		field: field[Rule, string]{of: func(r *Rule) *string { return &r.Workdir }, read: (*tableParser).workdir}},

	{Name: "after", Hint: "bus names that must be back first",
		absent: "none", example: `["org.freedesktop.NetworkManager"]`,
		field: field[Rule, []string]{of: func(r *Rule) *[]string { return &r.After }, read: (*tableParser).busNames}},
	{Name: "grace", Hint: "time to reconnect by itself before busmedic acts",
		example: `"5s"`,
		field:   field[Rule, time.Duration]{of: func(r *Rule) *time.Duration { return &r.Grace }, def: DefaultGrace, read: duration(true)}},
	{Name: "ready_timeout", Hint: "time a started app has to own its names",
		example: `"30s"`,
		field:   field[Rule, time.Duration]{of: func(r *Rule) *time.Duration { return &r.ReadyTimeout }, def: DefaultReadyTimeout, read: duration(false)}},
	{Name: "stop_timeout", Hint: "time a stopped app has to exit before SIGKILL",
		example: `"2s"`,
		field:   field[Rule, time.Duration]{of: func(r *Rule) *time.Duration { return &r.StopTimeout }, def: DefaultStopTimeout, read: duration(false)}},
	{Name: "max_restarts", Hint: "restarts allowed within restart_window (1-1000)",
		example: `3`,
		field:   field[Rule, int]{of: func(r *Rule) *int { return &r.MaxRestarts }, def: DefaultMaxRestarts, read: wholeNumber("a whole number", 1, 1000)}},
	{Name: "restart_window", Hint: "the window for max_restarts",
		example: `"10m"`,
		field:   field[Rule, time.Duration]{of: func(r *Rule) *time.Duration { return &r.RestartWindow }, def: DefaultRestartWindow, read: duration(false)}},
	{Name: "enabled", Hint: "off: the rule never matches",
		example: `false`,
		field:   field[Rule, bool]{of: func(r *Rule) *bool { return &r.Enabled }, def: true, read: (*tableParser).boolean}},
}

// ruleKeyNames are the names of ruleKeys, for the loader's unknown-key
// check and its suggestions.
var ruleKeyNames = func() []string {
	names := make([]string, len(ruleKeys))
	for i, k := range ruleKeys {
		names[i] = k.Name
	}
	return names
}()

// keyField is where an S, a Rule or Settings, holds a key, and how the key
// is read from its table: an [[app]], or [settings].
type keyField[S any] interface {
	get(s S) any
	addr(s *S) any // the field itself: a test ties each field of S to one key by it
	defaultValue() any
	setDefault(s *S)
	copyTo(dst *S, src S) // sets the key in dst to its value in src
	// parse reads the key of a's table into s, reporting its problems,
	// and reports whether s took the value.
	parse(a *tableParser, key string, s *S) bool
}

// field is a key held in a field of type T of an S.
type field[S, T any] struct {
	of  func(*S) *T
	def T
	// read returns the key's value in the table being parsed, having
	// reported each problem with it, and whether to take the value; when
	// not (the key is absent, or its value is unusable) the default stays.
	read func(a *tableParser, key string) (T, bool)
}

func (f field[S, T]) get(s S) any          { return *f.of(&s) }
func (f field[S, T]) addr(s *S) any        { return f.of(s) }
func (f field[S, T]) defaultValue() any    { return f.def }
func (f field[S, T]) setDefault(s *S)      { *f.of(s) = f.def }
func (f field[S, T]) copyTo(dst *S, src S) { *f.of(dst) = *f.of(&src) }

func (f field[S, T]) parse(a *tableParser, key string, s *S) bool {
	v, keep := f.read(a, key)
	if keep {
		*f.of(s) = v
	}
	return keep
}
