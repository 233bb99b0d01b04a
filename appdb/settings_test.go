package appdb

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestSettingKeysCoverSettings checks that every field of Settings is held
// by exactly one key of settingKeys, under the key's name in JSON too, and
// that the table is well formed.
func TestSettingKeysCoverSettings(t *testing.T) {
	var s Settings
	holders := fieldKeys(t, &s, settingKeyNames, func(i int) any { return settingKeys[i].field.addr(&s) })
	for f := range reflect.TypeFor[Settings]().Fields() {
		key, held := holders[f.Name]
		if !held {
			t.Errorf("Settings.%s is held by no key: add it to settingKeys", f.Name)
			continue
		}
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != key {
			t.Errorf("Settings.%s is %q in JSON, but key %s in apps.toml", f.Name, name, key)
		}
	}
	seen := map[string]bool{}
	for _, k := range settingKeys {
		if seen[k.name] {
			t.Errorf("key %s listed twice", k.name)
		}
		seen[k.name] = true
		if k.example == "" {
			t.Errorf("key %s lacks an example", k.name)
		}
		if k.absent != "" && !reflect.ValueOf(k.field.defaultValue()).IsZero() {
			t.Errorf("key %s has the default %v but says %q without it", k.name, k.field.defaultValue(), k.absent)
		}
	}
}

// settingsWith parses a [settings] table in which key has the TOML value
// value, and returns the settings.
func settingsWith(t *testing.T, key, value string) Settings {
	t.Helper()
	text := "[settings]\n" + key + " = " + value + "\n"
	set, err := Parse("f.toml", []byte(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	return set.Settings()
}

// TestSettingKeysRoundTrip takes every key with a value other than its
// default through the parser, the file encoder and the parser again, and
// through the layering of files: a key that one of them does not know is
// lost on the way.
func TestSettingKeysRoundTrip(t *testing.T) {
	for _, k := range settingKeys {
		t.Run(k.name, func(t *testing.T) {
			got := k.field.get(settingsWith(t, k.name, k.example))
			if reflect.DeepEqual(got, k.field.defaultValue()) {
				t.Fatalf("%s = %s gives the default %v: the example proves nothing", k.name, k.example, got)
			}

			d := parse("f.toml", []byte("[settings]\n"+k.name+" = "+k.example+"\n"))
			text := formatDocument(d.settings, d.setKeys, nil)
			if !strings.Contains(text, "\n"+k.name+" = ") {
				t.Errorf("the encoder leaves %s out:\n%s", k.name, text)
			}
			back, err := Parse("f.toml", []byte(text))
			if err != nil {
				t.Fatalf("%v\n%s", err, text)
			}
			if !reflect.DeepEqual(k.field.get(back.Settings()), got) {
				t.Errorf("%s after the round trip = %v, want %v\n%s", k.name, k.field.get(back.Settings()), got, text)
			}

			// Set in a system file only, the key comes from it.
			root := t.TempDir()
			system := writeRules(t, filepath.Join(root, "etc"), "[settings]\n"+k.name+" = "+k.example+"\n")
			user := writeRules(t, filepath.Join(root, "home"), "version = 1\n")
			set, err := Load(Paths{User: user, System: []string{system}})
			if err != nil {
				t.Fatal(err)
			}
			if layered := k.field.get(set.Settings()); !reflect.DeepEqual(layered, got) {
				t.Errorf("%s from the system file = %v, want %v", k.name, layered, got)
			}
		})
	}
}

// TestDefaultSettings checks that a file without [settings] gets each
// key's default.
func TestDefaultSettings(t *testing.T) {
	set, err := Parse("f.toml", []byte("version = 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range settingKeys {
		if got := k.field.get(set.Settings()); !reflect.DeepEqual(got, k.field.defaultValue()) {
			t.Errorf("%s = %v, want its default %v", k.name, got, k.field.defaultValue())
		}
	}
}

// TestSettingKeysInDocs checks the [settings] table of docs/rules.md
// against settingKeys: every key has a row with its default, and every row
// is a key.
func TestSettingKeysInDocs(t *testing.T) {
	var keys []docKey
	for _, k := range settingKeys {
		keys = append(keys, docKey{name: k.name, absent: k.absent, def: k.field.defaultValue(),
			valueOf: func(value string) any { return k.field.get(settingsWith(t, k.name, value)) }})
	}
	checkDocDefaults(t, keyTables(t, "### `[settings]`"), keys)
}
