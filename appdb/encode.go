package appdb

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// FormatRule returns a rule as an [[app]] table in TOML, with the keys in the
// documented order and the keys that hold their default value left out.
func FormatRule(r Rule) string {
	var b strings.Builder
	b.WriteString("[[app]]\n")
	kv := func(k, v string) { fmt.Fprintf(&b, "%s = %s\n", k, v) }
	str := func(k, v string) {
		if v != "" {
			kv(k, tomlString(v))
		}
	}
	list := func(k string, v []string) {
		if v != nil {
			kv(k, tomlList(v))
		}
	}
	dur := func(k string, v, def time.Duration) {
		if v != def {
			kv(k, tomlString(formatDuration(v)))
		}
	}
	str("id", r.ID)
	str("name", r.Name)
	str("icon", r.Icon)
	str("desktop", r.Desktop)
	if r.Bus != "" && r.Bus != DefaultBus {
		str("bus", string(r.Bus))
	}
	list("names", r.Names)
	str("exe", r.Exe)
	str("argv0", r.Argv0)
	str("cmdline", r.Cmdline)
	if r.Action != "" {
		str("action", string(r.Action))
	}
	str("signal", r.Signal)
	list("hook", r.Hook)
	list("exec", r.Exec)
	if r.Shell {
		kv("shell", "true")
	}
	if len(r.Env) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(r.Env)) {
			parts = append(parts, tomlKey(k)+" = "+tomlString(r.Env[k]))
		}
		kv("env", "{ "+strings.Join(parts, ", ")+" }")
	}
	str("workdir", r.Workdir)
	list("after", r.After)
	dur("grace", r.Grace, DefaultGrace)
	dur("ready_timeout", r.ReadyTimeout, DefaultReadyTimeout)
	dur("stop_timeout", r.StopTimeout, DefaultStopTimeout)
	if r.MaxRestarts != DefaultMaxRestarts {
		kv("max_restarts", strconv.Itoa(r.MaxRestarts))
	}
	dur("restart_window", r.RestartWindow, DefaultRestartWindow)
	if !r.Enabled {
		kv("enabled", "false")
	}
	return b.String()
}

// fileHeader starts a rules file that busmedic creates.
const fileHeader = "# busmedic relaunch rules: see docs/rules.md, or run: busmedic rules check\nversion = 1\n"

// formatDocument writes a whole file: version, settings and rules.
func formatDocument(s Settings, setKeys map[string]bool, rules []Rule) string {
	var b strings.Builder
	b.WriteString(fileHeader)
	if len(setKeys) > 0 {
		b.WriteString("\n[settings]\n")
		if setKeys["recover_on_logout"] {
			fmt.Fprintf(&b, "recover_on_logout = %t\n", s.RecoverOnLogout)
		}
		if setKeys["restart_after_update"] {
			fmt.Fprintf(&b, "restart_after_update = %s\n", tomlString(s.RestartAfterUpdate))
		}
		if setKeys["restart_session_bus_after_update"] {
			fmt.Fprintf(&b, "restart_session_bus_after_update = %s\n", tomlString(s.RestartSessionBusAfterUpdate))
		}
		if setKeys["restart_system_bus_after_update"] {
			fmt.Fprintf(&b, "restart_system_bus_after_update = %s\n", tomlString(s.RestartSystemBusAfterUpdate))
		}
		if setKeys["idle_minutes"] {
			fmt.Fprintf(&b, "idle_minutes = %d\n", s.IdleMinutes)
		}
	}
	for _, r := range rules {
		b.WriteString("\n")
		b.WriteString(FormatRule(r))
	}
	return b.String()
}

// formatDuration writes "1m" rather than time.Duration's "1m0s".
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

func tomlList(v []string) string {
	parts := make([]string, len(v))
	for i, s := range v {
		parts[i] = tomlString(s)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func tomlKey(k string) string {
	if k != "" && strings.IndexFunc(k, func(c rune) bool {
		return !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-')
	}) < 0 {
		return k
	}
	return tomlString(k)
}

// tomlString quotes s as a TOML basic string. Invalid UTF-8 (which TOML
// cannot hold) becomes U+FFFD.
func tomlString(s string) string {
	s = strings.ToValidUTF8(s, string(utf8.RuneError))
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if c < 0x20 || c == 0x7f {
				fmt.Fprintf(&b, `\u%04X`, c)
			} else {
				b.WriteRune(c)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Validate checks a rule built in memory (by the GUI, or FromPeer) with the
// same checks as the loader. Problems name the file "(rule)".
func (r Rule) Validate() error {
	text := "version = 1\n" + FormatRule(r)
	if _, err := Parse("(rule)", []byte(text)); err != nil {
		return fmt.Errorf("rule %q: %w", r.ID, err)
	}
	return nil
}
