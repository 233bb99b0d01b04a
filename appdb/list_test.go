package appdb

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestWriteJSONKeys takes every key with a value other than its default
// through WriteJSON: each is written under its name, in RuleKeys' order,
// with durations as strings, followed by the source and line.
func TestWriteJSONKeys(t *testing.T) {
	for _, k := range ruleKeys {
		t.Run(k.Name, func(t *testing.T) {
			r := ruleWith(t, k.Name, k.example)
			var b bytes.Buffer
			if err := WriteJSON(&b, []Rule{r}); err != nil {
				t.Fatal(err)
			}
			var got []map[string]any
			if err := json.Unmarshal(b.Bytes(), &got); err != nil || len(got) != 1 {
				t.Fatalf("WriteJSON wrote %v:\n%s", err, b.String())
			}
			v, ok := got[0][k.Name]
			if !ok {
				t.Fatalf("WriteJSON leaves %s out:\n%s", k.Name, b.String())
			}
			if d, isDuration := k.Value(r).(time.Duration); isDuration && v != d.String() {
				t.Errorf("%s = %v, want the duration as a string, %q", k.Name, v, d.String())
			}
			if got[0]["source"] != "f.toml" || got[0]["line"] != 1.0 {
				t.Errorf("source and line = %v, %v", got[0]["source"], got[0]["line"])
			}
			// The keys of a rule are those of its object: no nested
			// key (env's) is named like one.
			last, lastName := -1, ""
			for _, name := range append(slices.Clone(ruleKeyNames), "source", "line") {
				at := strings.Index(b.String(), `"`+name+`": `)
				if at < 0 {
					continue
				}
				if at < last {
					t.Errorf("%s comes before %s, against RuleKeys' order:\n%s", name, lastName, b.String())
				}
				last, lastName = at, name
			}
		})
	}
}

// TestWriteJSONEmpty checks what an optional key left empty writes: nothing
// when its default is empty too, else its value.
func TestWriteJSONEmpty(t *testing.T) {
	r := NewRule("min")
	r.Exe = "/usr/bin/min"
	var b bytes.Buffer
	if err := WriteJSON(&b, []Rule{r}); err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range ruleKeys {
		_, written := got[0][k.Name]
		if want := k.Required || !reflect.ValueOf(k.Value(r)).IsZero() || !reflect.ValueOf(k.Default()).IsZero(); written != want {
			t.Errorf("key %s written = %v, want %v:\n%s", k.Name, written, want, b.String())
		}
	}
}

func TestWriteTable(t *testing.T) {
	set, err := Parse("apps.toml", []byte(`
[[app]]
id = "dunst"
names = ["org.freedesktop.Notifications", "org.dunstproject.cmd0"]
exe = "/usr/bin/dunst"

[[app]]
id = "tray"
argv0 = "tray*"
cmdline = "python3 */tray.py"
action = "notify"

[[app]]
id = "panel"
enabled = false
`))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := WriteTable(&b, set.Rules()); err != nil {
		t.Fatal(err)
	}
	want := `ID     BUS      ACTION    MATCH                                                                         SOURCE
dunst  session  relaunch  names=org.freedesktop.Notifications,org.dunstproject.cmd0 exe=/usr/bin/dunst  apps.toml:2
tray   session  notify    argv0=tray* cmdline="python3 */tray.py"                                       apps.toml:7
panel  session  disabled  -                                                                             apps.toml:13
`
	if b.String() != want {
		t.Errorf("WriteTable:\n%s\nwant\n%s", b.String(), want)
	}
}
