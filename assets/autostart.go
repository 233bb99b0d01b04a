package assets

import (
	_ "embed"
	"strings"
)

// The templates of the files "busmedic autostart" and "make install" write.
// Each holds a working default command ("busmedic run") that AutostartEntry
// and UserUnit replace.
var (
	//go:embed autostart.desktop
	autostartDesktop []byte
	//go:embed busmedic.service
	userUnit []byte
)

// AutostartEntry returns the XDG autostart entry
// ($XDG_CONFIG_HOME/autostart/busmedic.desktop) that starts busmedic with
// the session by running argv, such as ["/home/ada/.local/bin/busmedic",
// "run"]. The arguments are quoted for the Exec key as the Desktop Entry
// Specification requires.
func AutostartEntry(argv []string) []byte {
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = desktopEscape(execQuote(a))
	}
	return replaceLine(autostartDesktop, "Exec=", strings.Join(quoted, " "))
}

// HiddenAutostartEntry returns the entry a user puts in
// $XDG_CONFIG_HOME/autostart to hide the system-wide one: by the XDG
// autostart specification, Hidden=true there means "as if it were not
// installed" for that user.
func HiddenAutostartEntry() []byte {
	return []byte("[Desktop Entry]\nType=Application\nName=busmedic\nExec=busmedic run\nHidden=true\n")
}

// UserUnit returns the systemd user unit (busmedic.service) that runs
// "exe run" and starts with wantedBy (such as "graphical-session.target").
// exe must be an absolute path: systemd does not search the user's PATH.
func UserUnit(exe, wantedBy string) []byte {
	b := replaceLine(userUnit, "ExecStart=", systemdQuote(exe)+" run")
	// After=graphical-session.target stays: ordering binds only when both
	// units start together, and After=default.target would be a cycle.
	return replaceLine(b, "WantedBy=", wantedBy)
}

// replaceLine sets the value of the first line that starts with key.
func replaceLine(file []byte, key, value string) []byte {
	lines := strings.SplitAfter(string(file), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, key) {
			lines[i] = key + value + "\n"
			break
		}
	}
	return []byte(strings.Join(lines, ""))
}

// execQuote quotes one argument of an Exec key: an argument with a reserved
// character goes in double quotes, inside which `"`, "`", "$" and "\" take
// a backslash; "%" is doubled, as field codes start with it.
func execQuote(arg string) string {
	arg = strings.ReplaceAll(arg, "%", "%%")
	if arg != "" && !strings.ContainsAny(arg, " \t\n\"'\\><~|&;$*?#()`") {
		return arg
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range arg {
		if strings.ContainsRune("\"`$\\", c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	b.WriteByte('"')
	return b.String()
}

// desktopEscape escapes a string value of a desktop file: the file format
// itself reads "\\" as one backslash, below the Exec quoting.
func desktopEscape(s string) string { return strings.ReplaceAll(s, `\`, `\\`) }

// systemdQuote quotes a path for ExecStart=: systemd splits on spaces and
// reads "\" escapes and "%" specifiers.
func systemdQuote(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, "%", "%%")
	if strings.ContainsAny(s, " \t\"'") {
		s = `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
	}
	return s
}
