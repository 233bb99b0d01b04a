package appdb

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// notKeys are the Rule fields that no [[app]] key sets.
var notKeys = []string{"Source", "Line"}

// fieldKeys returns the key that holds each field of *s, by field name,
// given the field each of keys holds (addr(i) is the address of the field
// that keys[i] holds). It reports two keys that hold the same field.
func fieldKeys[S any](t *testing.T, s *S, keys []string, addr func(i int) any) map[string]string {
	t.Helper()
	holder := map[uintptr]string{} // field address -> key
	for i, key := range keys {
		p := reflect.ValueOf(addr(i)).Pointer()
		if other, dup := holder[p]; dup {
			t.Errorf("keys %s and %s hold the same field of %T", other, key, *s)
		}
		holder[p] = key
	}
	byField := map[string]string{}
	rv := reflect.ValueOf(s).Elem()
	for i := range rv.NumField() {
		if key, held := holder[rv.Field(i).Addr().Pointer()]; held {
			byField[rv.Type().Field(i).Name] = key
		}
	}
	return byField
}

// TestRuleKeysCoverRule checks that every field of Rule is held by exactly
// one key of ruleKeys, and that the table is well formed.
func TestRuleKeysCoverRule(t *testing.T) {
	var r Rule
	holders := fieldKeys(t, &r, ruleKeyNames, func(i int) any { return ruleKeys[i].field.addr(&r) })
	for f := range reflect.TypeFor[Rule]().Fields() {
		name := f.Name
		key, held := holders[name]
		switch {
		case !held && !slices.Contains(notKeys, name):
			t.Errorf("Rule.%s is held by no key: add it to ruleKeys (or to notKeys if apps.toml cannot set it)", name)
		case held && slices.Contains(notKeys, name):
			t.Errorf("Rule.%s is in notKeys but key %s holds it", name, key)
		}
	}

	if ruleKeys[0].Name != "id" {
		t.Errorf("first key = %s: id must come first, so that problems can name the app", ruleKeys[0].Name)
	}
	seen := map[string]bool{}
	for _, k := range ruleKeys {
		if seen[k.Name] {
			t.Errorf("key %s listed twice", k.Name)
		}
		seen[k.Name] = true
		if k.Hint == "" || k.example == "" {
			t.Errorf("key %s lacks a hint or an example", k.Name)
		}
		if (k.absent != "" || k.Required) && !reflect.ValueOf(k.Default()).IsZero() {
			t.Errorf("key %s has the default %v but is required or says %q without it", k.Name, k.Default(), k.absent)
		}
		if k.Required && k.absent != "" {
			t.Errorf("key %s is required but says %q without it", k.Name, k.absent)
		}
		if k.Choices != nil && !slices.Contains(k.Choices, k.Default().(string)) {
			t.Errorf("key %s: default %v is not one of %q", k.Name, k.Default(), k.Choices)
		}
	}
	if !slices.Equal(ruleKeyNames, slices.Collect(func(yield func(string) bool) {
		for _, k := range RuleKeys() {
			yield(k.Name)
		}
	})) {
		t.Errorf("RuleKeys() and ruleKeyNames disagree")
	}
}

// ruleWith parses a valid [[app]] table in which key has the TOML value
// value, and returns its rule. The other keys of the table give the
// actions and shell = true what they need.
func ruleWith(t *testing.T, key, value string) Rule {
	t.Helper()
	lines := []string{`id = "t"`, `names = ["org.example.T"]`, `signal = "SIGHUP"`, `exec = ["/bin/true"]`}
	lines = slices.DeleteFunc(lines, func(l string) bool { return strings.HasPrefix(l, key+" = ") })
	text := "[[app]]\n" + strings.Join(append(lines, key+" = "+value), "\n") + "\n"
	set, err := Parse("f.toml", []byte(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	return set.Rules()[0]
}

// TestRuleKeysRoundTrip takes every key with a value other than its
// default through parse, FormatRule and parse again: a key the loader or
// FormatRule does not know is lost on the way.
func TestRuleKeysRoundTrip(t *testing.T) {
	for _, k := range ruleKeys {
		t.Run(k.Name, func(t *testing.T) {
			r := ruleWith(t, k.Name, k.example)
			got := k.Value(r)
			if reflect.DeepEqual(got, k.Default()) {
				t.Fatalf("%s = %s gives the default %v: the example proves nothing", k.Name, k.example, got)
			}
			text := FormatRule(r)
			if !strings.Contains(text, "\n"+k.Name+" = ") {
				t.Errorf("FormatRule leaves %s out:\n%s", k.Name, text)
			}
			set, err := Parse("f.toml", []byte(text))
			if err != nil {
				t.Fatalf("%v\n%s", err, text)
			}
			back := set.Rules()[0]
			if !reflect.DeepEqual(k.Value(back), got) {
				t.Errorf("%s after the round trip = %v, want %v\n%s", k.Name, k.Value(back), got, text)
			}
			if again := FormatRule(back); again != text {
				t.Errorf("FormatRule changed on the round trip:\n%s\nthen\n%s", text, again)
			}
		})
	}
}

// TestRequiredKeys checks that a rule without a required key does not
// load, and that the problem names the key.
func TestRequiredKeys(t *testing.T) {
	for _, k := range ruleKeys {
		if !k.Required {
			continue
		}
		lines := []string{`id = "t"`, `names = ["org.example.T"]`}
		lines = slices.DeleteFunc(lines, func(l string) bool { return strings.HasPrefix(l, k.Name+" = ") })
		_, err := Parse("f.toml", []byte("[[app]]\n"+strings.Join(lines, "\n")+"\n"))
		if err == nil || !strings.Contains(err.Error(), "key "+k.Name+": missing") {
			t.Errorf("a rule without %s: %v", k.Name, err)
		}
	}
}

// TestNewRuleDefaults checks that NewRule holds each key's default.
func TestNewRuleDefaults(t *testing.T) {
	r := NewRule("x")
	for _, k := range ruleKeys[1:] {
		if !reflect.DeepEqual(k.Value(r), k.Default()) {
			t.Errorf("NewRule: %s = %v, want its default %v", k.Name, k.Value(r), k.Default())
		}
	}
	if r.ID != "x" {
		t.Errorf("NewRule: id = %q", r.ID)
	}
}

// docRow is one row of a key table of docs/rules.md: the cells by column
// name.
type docRow map[string]string

// keyTables returns the rows of the tables in the section of docs/rules.md
// under heading, such as "## `[[app]]` keys", by key. The section ends at
// the next heading of its level or above.
func keyTables(t *testing.T, heading string) map[string]docRow {
	t.Helper()
	data, err := os.ReadFile("../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n"+heading+"\n")
	if !ok {
		t.Fatalf("docs/rules.md has no section %q", heading)
	}
	level := len(heading) - len(strings.TrimLeft(heading, "#"))
	inCode, end := false, 0
	for line := range strings.Lines(section) {
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
		}
		if n := len(line) - len(strings.TrimLeft(line, "#")); !inCode && n > 0 && n <= level && strings.HasPrefix(line[n:], " ") {
			break
		}
		end += len(line)
	}
	section = section[:end]
	cells := func(line string) []string {
		parts := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		return parts
	}
	rows := map[string]docRow{}
	var header []string
	for line := range strings.Lines(section) {
		switch {
		case !strings.HasPrefix(line, "|"):
			header = nil
		case header == nil:
			header = cells(line)
		case strings.HasPrefix(line, "|--"):
		default:
			row := docRow{}
			for i, c := range cells(line) {
				if i < len(header) {
					row[header[i]] = c
				}
			}
			key := strings.Trim(row["Key"], "`")
			if _, dup := rows[key]; dup {
				t.Errorf("docs/rules.md: key %s has two rows", key)
			}
			rows[key] = row
		}
	}
	return rows
}

// TestRuleKeysInDocs checks the key tables of docs/rules.md against
// ruleKeys: every key has a row with its default and its example, and
// every row is a key.
func TestRuleKeysInDocs(t *testing.T) {
	var keys []docKey
	for _, k := range ruleKeys {
		keys = append(keys, docKey{name: k.Name, required: k.Required, absent: k.absent, def: k.Default(),
			valueOf: func(value string) any { return k.Value(ruleWith(t, k.Name, value)) }})
	}
	rows := checkDocDefaults(t, keyTables(t, "## `[[app]]` keys"), keys)
	for _, k := range ruleKeys {
		if want := "`" + k.Name + " = " + k.example + "`"; !strings.Contains(rows[k.Name]["Example"], want) {
			t.Errorf("docs/rules.md: examples of %s = %q, want them to show %s", k.Name, rows[k.Name]["Example"], want)
		}
	}
}

// docKey is a key as a key table of docs/rules.md documents it.
type docKey struct {
	name     string
	required bool
	absent   string // what the Default column says for a key without a default value
	def      any
	valueOf  func(value string) any // the key's value in a table where it is value, in TOML
}

// checkDocDefaults checks rows, a key table of docs/rules.md, against keys:
// every key has a row whose Default column says what a table without the
// key gets, and every row is a key. It returns the row of each key.
func checkDocDefaults(t *testing.T, rows map[string]docRow, keys []docKey) map[string]docRow {
	t.Helper()
	found := map[string]docRow{}
	for _, k := range keys {
		row, ok := rows[k.name]
		if !ok {
			t.Errorf("docs/rules.md: no row for key %s", k.name)
			continue
		}
		found[k.name] = row
		def, ok := row["Default"]
		switch {
		case !ok:
			t.Errorf("docs/rules.md: the table of key %s has no Default column", k.name)
		case k.required:
			if def != "required" {
				t.Errorf("docs/rules.md: default of %s = %q, want required", k.name, def)
			}
		case k.absent != "":
			if def != k.absent {
				t.Errorf("docs/rules.md: default of %s = %q, want %q", k.name, def, k.absent)
			}
		case !strings.HasPrefix(def, "`") || !strings.HasSuffix(def, "`"):
			t.Errorf("docs/rules.md: default of %s = %q, want a value in backquotes", k.name, def)
		default:
			if got := k.valueOf(strings.Trim(def, "`")); !reflect.DeepEqual(got, k.def) {
				t.Errorf("docs/rules.md: default of %s is %s, but the default is %v", k.name, def, k.def)
			}
		}
	}
	for key := range rows {
		if _, ok := found[key]; !ok {
			t.Errorf("docs/rules.md: the table names %q, which is no key", key)
		}
	}
	return found
}
