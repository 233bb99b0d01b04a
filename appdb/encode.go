package appdb

import (
	"fmt"
	"maps"
	"reflect"
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
	for _, k := range ruleKeys {
		v := k.Value(r)
		if nothingToWrite(v) || (!k.alwaysWritten && reflect.DeepEqual(v, k.Default())) {
			continue
		}
		fmt.Fprintf(&b, "%s = %s\n", k.Name, tomlValue(v))
	}
	return b.String()
}

// nothingToWrite reports whether a key's value says nothing: an empty
// string or table, or no list at all. An empty list is written, as
// "names = []": the file said so.
func nothingToWrite(v any) bool {
	switch v := v.(type) {
	case string:
		return v == ""
	case []string:
		return v == nil
	case map[string]string:
		return len(v) == 0
	}
	return false
}

// tomlValue writes a value of one of the types a key holds (see
// RuleKey.Value), in a rule or in [settings].
func tomlValue(v any) string {
	switch v := v.(type) {
	case string:
		return tomlString(v)
	case []string:
		return tomlList(v)
	case bool:
		return strconv.FormatBool(v)
	case int:
		return strconv.Itoa(v)
	case time.Duration:
		return tomlString(formatDuration(v))
	case map[string]string:
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(v)) {
			parts = append(parts, tomlKey(k)+" = "+tomlString(v[k]))
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	}
	panic(fmt.Sprintf("appdb: no TOML form for a key of type %T", v))
}

// fileHeader starts a rules file that busmedic creates.
const fileHeader = "# busmedic relaunch rules: see /usr/share/doc/busmedic/rules.md, or run: busmedic rules check\nversion = 1\n"

// formatDocument writes a whole file: version, settings and rules.
func formatDocument(s Settings, setKeys map[string]bool, rules []Rule) string {
	var b strings.Builder
	b.WriteString(fileHeader)
	if len(setKeys) > 0 {
		b.WriteString("\n[settings]\n")
		for _, k := range settingKeys {
			if setKeys[k.name] {
				fmt.Fprintf(&b, "%s = %s\n", k.name, tomlValue(k.field.get(s)))
			}
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
