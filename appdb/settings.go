package appdb

// Settings are the [settings] table: choices that apply to all rules. Each
// field is one key of settingKeys.
type Settings struct {
	// RecoverOnLogout makes busmedic act on a bus that goes away at logout.
	RecoverOnLogout bool `json:"recover_on_logout"`
	// RestartAfterUpdate is "ask", "when-idle" or "never".
	RestartAfterUpdate string `json:"restart_after_update"`
	// RestartSessionBusAfterUpdate and RestartSystemBusAfterUpdate, when
	// set, override RestartAfterUpdate for one bus: restarting the system
	// bus ends every user's session, so it may well deserve another choice.
	RestartSessionBusAfterUpdate string `json:"restart_session_bus_after_update,omitempty"`
	RestartSystemBusAfterUpdate  string `json:"restart_system_bus_after_update,omitempty"`
	// IdleMinutes is how long the session must be idle for "when-idle".
	IdleMinutes int `json:"idle_minutes"`
	// StopDeafServices makes busmedic stop the old copy of a service the
	// bus starts on demand that stayed alive but deaf through a bus
	// restart, once the new bus has started a new copy (or, for a copy
	// dbus-broker started in a unit of its own, once it stayed off the
	// new bus for 2 s): such services (kglobalaccel5, kactivitymanagerd)
	// would otherwise pile up, one copy per restart.
	StopDeafServices bool `json:"stop_deaf_services"`
	// Tray is how the tray icon shows: TrayAlways, TrayWhenNeeded
	// (passive while all is well, so that panels may tuck it away), or
	// TrayNever (no icon: busmedic speaks through notifications and the
	// command line only).
	Tray string `json:"tray"`
}

// The choices of Settings.Tray.
const (
	TrayAlways     = "always"
	TrayWhenNeeded = "when-needed"
	TrayNever      = "never"
)

// RestartAfterUpdateFor returns the restart_after_update choice for bus
// ("session" or "system").
func (s Settings) RestartAfterUpdateFor(bus string) string {
	switch {
	case bus == "session" && s.RestartSessionBusAfterUpdate != "":
		return s.RestartSessionBusAfterUpdate
	case bus == "system" && s.RestartSystemBusAfterUpdate != "":
		return s.RestartSystemBusAfterUpdate
	}
	return s.RestartAfterUpdate
}

// DefaultSettings returns the settings used for keys no file sets.
func DefaultSettings() Settings {
	var s Settings
	for _, k := range settingKeys {
		k.field.setDefault(&s)
	}
	return s
}

// settingKey is one key of the [settings] table. settingKeys lists them
// all: the parser, the layering of files and the encoder read the keys
// from it, and tests check Settings and docs/rules.md against it, so that
// a key cannot be added in one place only.
type settingKey struct {
	name string
	// absent is what docs/rules.md says a file without the key gets, for a
	// key whose default is another key's value: that key, in backquotes.
	// Empty for a key with a default of its own.
	absent string
	// example is a value other than the default, in TOML.
	example string
	field   keyField[Settings]
}

// updateChoices are what to do when a bus daemon was updated.
var updateChoices = []string{"ask", "when-idle", "never"}

// settingKeys is the one list of the keys of [settings], in the order of
// docs/rules.md, in which files busmedic writes hold them.
var settingKeys = []settingKey{
	{name: "recover_on_logout", example: `true`,
		field: field[Settings, bool]{of: func(s *Settings) *bool { return &s.RecoverOnLogout }, read: (*tableParser).boolean}},
	{name: "restart_after_update", example: `"when-idle"`,
		field: field[Settings, string]{of: func(s *Settings) *string { return &s.RestartAfterUpdate }, def: "ask", read: anyOf(updateChoices)}},
	{name: "restart_session_bus_after_update", absent: "`restart_after_update`", example: `"never"`,
		field: field[Settings, string]{of: func(s *Settings) *string { return &s.RestartSessionBusAfterUpdate }, read: anyOf(updateChoices)}},
	{name: "restart_system_bus_after_update", absent: "`restart_after_update`", example: `"ask"`,
		field: field[Settings, string]{of: func(s *Settings) *string { return &s.RestartSystemBusAfterUpdate }, read: anyOf(updateChoices)}},
	{name: "idle_minutes", example: `10`,
		field: field[Settings, int]{of: func(s *Settings) *int { return &s.IdleMinutes }, def: 5, read: wholeNumber("a number of minutes", 1, 24*60)}},
	{name: "stop_deaf_services", example: `false`,
		field: field[Settings, bool]{of: func(s *Settings) *bool { return &s.StopDeafServices }, def: true, read: (*tableParser).boolean}},
	{name: "tray", example: `"when-needed"`,
		field: field[Settings, string]{of: func(s *Settings) *string { return &s.Tray }, def: TrayAlways, read: anyOf([]string{TrayAlways, TrayWhenNeeded, TrayNever})}},
}

// settingKeyNames are the names of settingKeys, for the parser's
// unknown-key check and its suggestions.
var settingKeyNames = func() []string {
	names := make([]string, len(settingKeys))
	for i, k := range settingKeys {
		names[i] = k.name
	}
	return names
}()
