package appdb

import (
	"time"

	"golang.org/x/sys/unix"
)

// Bus says which message bus a rule watches.
type Bus string

// The buses a rule can name.
const (
	BusSession Bus = "session"
	BusSystem  Bus = "system"
	BusBoth    Bus = "both"
)

// Includes reports whether a rule for bus b applies to events on bus other
// (BusSession or BusSystem).
func (b Bus) Includes(other Bus) bool {
	return b == other || b == BusBoth
}

// Action says what the recovery engine does for a matched app once the bus is
// back and the app has not reconnected by itself within its grace time.
type Action string

// The actions a rule can name.
const (
	// ActionRelaunch starts the app if it died; if it is alive but off the
	// bus, it stops it first, then starts it.
	ActionRelaunch Action = "relaunch"
	// ActionSignal sends Rule.Signal to the app.
	ActionSignal Action = "signal"
	// ActionHook runs Rule.Hook.
	ActionHook Action = "hook"
	// ActionNotify asks the user what to do.
	ActionNotify Action = "notify"
	// ActionIgnore does nothing (and stops less specific rules from matching).
	ActionIgnore Action = "ignore"
	// ActionKeep keeps the app through bus restarts: busmedic starts it
	// through "busmedic keep", whose keeper holds its connection while the
	// bus is down and replays what it had asked of the bus. An app that
	// is kept needs nothing after a restart; one that is not (it died, or
	// was started before the rule) is relaunched as relaunch does, through
	// the keeper, so that it is kept from then on. Session bus only.
	ActionKeep Action = "keep"
)

// Defaults for keys a rule leaves out.
const (
	DefaultBus           = BusSession
	DefaultAction        = ActionRelaunch
	DefaultGrace         = 2 * time.Second
	DefaultReadyTimeout  = 10 * time.Second
	DefaultStopTimeout   = 5 * time.Second
	DefaultMaxRestarts   = 5
	DefaultRestartWindow = 60 * time.Second
)

// Rule is one [[app]] table: how to recognise an app and what to do for it
// after a bus restart. Rules returned by this package have their defaults
// filled in and have passed validation.
type Rule struct {
	// ID identifies the rule across files; [a-z0-9._-]+.
	ID string `json:"id"`
	// Name is the display name; empty means use the desktop file or ID.
	Name string `json:"name,omitempty"`
	// Icon is an icon name or an absolute path.
	Icon string `json:"icon,omitempty"`
	// Desktop is a desktop-file id (such as "dunst.desktop") used for the
	// name, icon and command when those are not given.
	Desktop string `json:"desktop,omitempty"`
	// Bus is the bus the app lives on.
	Bus Bus `json:"bus"`

	// Names are well-known bus names the app owns.
	Names []string `json:"names,omitempty"`
	// Exe is the absolute path of the app's executable.
	Exe string `json:"exe,omitempty"`
	// Argv0 is a glob matched against the process's argv[0] (against its
	// base name when the pattern has no '/').
	Argv0 string `json:"argv0,omitempty"`
	// Cmdline is a glob matched against the process's arguments joined by
	// single spaces.
	Cmdline string `json:"cmdline,omitempty"`

	// Action is what to do; Signal and Hook serve the signal and hook actions.
	Action Action   `json:"action"`
	Signal string   `json:"signal,omitempty"` // normalised, such as "SIGHUP"
	Hook   []string `json:"hook,omitempty"`

	// Unit is the systemd user service the app runs in, such as
	// "app-dunst@autostart.service": a relaunch goes through the user
	// manager (start or restart the unit) rather than starting Exec.
	Unit string `json:"unit,omitempty"`
	// Exec is the command that starts the app. Without Shell it is an argv
	// run directly; with Shell it holds one command line for /bin/sh -c.
	Exec    []string          `json:"exec,omitempty"`
	Shell   bool              `json:"shell,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	Workdir string            `json:"workdir,omitempty"`

	// After lists bus names that must be on the new bus before acting.
	After []string `json:"after,omitempty"`
	// Grace is how long the app may take to reconnect by itself.
	Grace time.Duration `json:"grace"`
	// ReadyTimeout is how long a started app may take to own its names.
	ReadyTimeout time.Duration `json:"ready_timeout"`
	// StopTimeout is how long a stopped app may take to exit before SIGKILL.
	StopTimeout time.Duration `json:"stop_timeout"`
	// MaxRestarts limits the restarts within RestartWindow.
	MaxRestarts   int           `json:"max_restarts"`
	RestartWindow time.Duration `json:"restart_window"`
	// Enabled is false for a rule that is switched off (it never matches).
	Enabled bool `json:"enabled"`

	// Source is the file the rule was loaded from and Line the line of its
	// [[app]] header; both are empty for a rule built in memory.
	Source string `json:"source,omitempty"`
	Line   int    `json:"line,omitempty"`
}

// NewRule returns a rule with the given id and every default filled in.
func NewRule(id string) Rule {
	var r Rule
	for _, k := range ruleKeys {
		k.field.setDefault(&r)
	}
	r.ID = id
	return r
}

// DisplayName returns Name, or the ID when Name is empty.
func (r Rule) DisplayName() string {
	if r.Name != "" {
		return r.Name
	}
	return r.ID
}

// SignalNumber returns the signal of an ActionSignal rule, or 0.
func (r Rule) SignalNumber() unix.Signal {
	if r.Signal == "" {
		return 0
	}
	return unix.SignalNum(r.Signal)
}
