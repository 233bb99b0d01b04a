package appdb

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const goodFile = `# test rules
version = 1

[settings]
restart_after_update = "when-idle"

[[app]]
id = "dunst"
names = ["org.freedesktop.Notifications"]
exe = "/usr/bin/dunst"
exec = ["/usr/bin/dunst"]
grace = "3s"

[[app]]
id = "panel"
bus = "both"
argv0 = "xfce4-panel"
action = "signal"
signal = "hup"
env = { LANG = "C" }
`

func TestParseGood(t *testing.T) {
	set, err := Parse("apps.toml", []byte(goodFile))
	if err != nil {
		t.Fatal(err)
	}
	rules := set.Rules()
	if len(rules) != 2 {
		t.Fatalf("got %d rules, want 2", len(rules))
	}
	d := rules[0]
	if d.ID != "dunst" || d.Grace != 3*time.Second || d.ReadyTimeout != DefaultReadyTimeout ||
		d.Bus != BusSession || d.Action != ActionRelaunch || !d.Enabled || d.MaxRestarts != 5 ||
		d.Source != "apps.toml" || d.Line != 7 {
		t.Errorf("dunst = %+v", d)
	}
	p := rules[1]
	if p.Signal != "SIGHUP" || p.Bus != BusBoth || p.Env["LANG"] != "C" || p.Line != 14 {
		t.Errorf("panel = %+v", p)
	}
	if got := set.Settings(); got.RestartAfterUpdate != "when-idle" || got.IdleMinutes != 5 {
		t.Errorf("settings = %+v", got)
	}
}

// TestValidationErrors checks that each problem is reported with the file,
// the line and the key.
func TestValidationErrors(t *testing.T) {
	const head = "version = 1\n[[app]]\nid = \"x\"\nnames = [\"org.example.X\"]\n" // app at line 2
	tests := []struct {
		name    string
		text    string
		want    string // substring of the error, after "f.toml:"
		warning bool
	}{
		{"syntax", "version = 1\n[[app]\n", `2: `, false},
		{"duplicate key", "version = 1\nversion = 1\n", `2: `, false},
		{"unknown top key", "version = 1\nvresion = 2\n", `2: key vresion: unknown key (did you mean "version"?)`, false},
		{"bad version", "version = 2\n", `1: key version: unsupported version 2`, false},
		{"version type", "version = \"1\"\n", `1: key version: want an integer, got a string`, false},
		{"settings not table", "settings = 3\n", `1: key settings: want a table`, false},
		{"unknown setting", "[settings]\nidle_minute = 3\n", `2: key settings.idle_minute: unknown key (did you mean "idle_minutes"?)`, false},
		{"bad setting enum", "[settings]\nrestart_after_update = \"always\"\n", `2: key settings.restart_after_update: want "ask", "when-idle" or "never", got "always"`, false},
		{"setting enum type", "[settings]\nrestart_system_bus_after_update = 3\n", `2: key settings.restart_system_bus_after_update: want "ask", "when-idle" or "never", got 3`, false},
		{"bad setting type", "[settings]\nrecover_on_logout = 1\n", `2: key settings.recover_on_logout: want true or false, got an integer`, false},
		{"bad idle", "[settings]\nidle_minutes = 0\n", `2: key settings.idle_minutes: want a number of minutes from 1 to 1440, got 0`, false},
		{"app not array", "[app]\nid = \"x\"\n", `1: key app: want an array of tables`, false},
		{"unknown app key", head + "grase = \"1s\"\n", `5: app "x": key grase: unknown key (did you mean "grace"?)`, false},
		{"missing id", "[[app]]\nnames = [\"org.example.X\"]\n", `1: key id: missing`, false},
		{"bad id", "[[app]]\nid = \"Dunst!\"\nnames = [\"org.example.X\"]\n", `2: app "Dunst!": key id: bad id`, false},
		{"duplicate id", head + head[12:], `6: app "x": key id: duplicate id "x" (first defined at line 2)`, false},
		{"wrong type", head + "name = 3\n", `5: app "x": key name: want a string, got an integer`, false},
		{"bad bus", head + "bus = \"user\"\n", `5: app "x": key bus: want "session", "system" or "both"`, false},
		{"bad bus name", "[[app]]\nid = \"x\"\nnames = [\"org.example.X\", \"nodots\"]\n", `3: app "x": key names: bad bus name "nodots"`, false},
		{"unique bus name", "[[app]]\nid = \"x\"\nnames = [\":1.42\"]\n", `3: app "x": key names: bad bus name ":1.42"`, false},
		{"digit element", "[[app]]\nid = \"x\"\nnames = [\"org.2example\"]\n", `3: app "x": key names: bad bus name "org.2example": element "2example" starts with a digit`, false},
		{"names not list", "[[app]]\nid = \"x\"\nnames = \"org.example.X\"\n", `3: app "x": key names: want a list of strings, got a string`, false},
		{"names element", "[[app]]\nid = \"x\"\nnames = [\"org.example.X\", 4]\n", `3: app "x": key names: element 2: want a string`, false},
		{"relative exe", "[[app]]\nid = \"x\"\nexe = \"dunst\"\n", `3: app "x": key exe: exe "dunst": want an absolute path`, false},
		{"bad glob", "[[app]]\nid = \"x\"\nargv0 = \"[abc\"\n", `3: app "x": key argv0: bad pattern "[abc": '[' without ']'`, false},
		{"bad range", "[[app]]\nid = \"x\"\ncmdline = \"[z-a]\"\n", `3: app "x": key cmdline: bad pattern`, false},
		{"no matcher", "[[app]]\nid = \"x\"\n", `1: app "x": key names: no matcher`, false},
		{"bad action", head + "action = \"restart\"\n", `5: app "x": key action: want "relaunch"`, false},
		{"signal missing", head + "action = \"signal\"\n", `2: app "x": key signal: action "signal" needs a signal`, false},
		{"bad signal", head + "action = \"signal\"\nsignal = \"SIGFOO\"\n", `6: app "x": key signal: unknown signal "SIGFOO"`, false},
		{"keep system bus", head + "action = \"keep\"\nbus = \"system\"\n", `6: app "x": key bus: action "keep" works on the session bus only (bus is "system")`, false},
		{"keep both buses", head + "bus = \"both\"\naction = \"keep\"\n", `5: app "x": key bus: action "keep" works on the session bus only (bus is "both")`, false},
		{"keep unit", head + "action = \"keep\"\nunit = \"app-dunst@autostart.service\"\n", `6: app "x": key unit: action "keep" cannot go with unit: systemd starts the unit's ExecStart itself`, false},
		{"hook missing", head + "action = \"hook\"\n", `2: app "x": key hook: action "hook" needs a hook command`, false},
		{"empty hook", head + "action = \"hook\"\nhook = []\n", `6: app "x": key hook: want a command`, false},
		{"empty exec", head + "exec = [\"\"]\n", `5: app "x": key exec: want a command`, false},
		{"relative exec", head + "exec = [\"bin/x\"]\n", `5: app "x": key exec: program "bin/x": want an absolute path`, false},
		{"exec not found", head + "exec = [\"busmedic-no-such-program\"]\n", `5: warning: app "x": key exec: program "busmedic-no-such-program" not found`, true},
		{"shell argv", head + "shell = true\nexec = [\"a\", \"b\"]\n", `6: app "x": key exec: with shell = true, exec must hold exactly one`, false},
		{"env type", head + "env = [\"A=b\"]\n", `5: app "x": key env: want a table of strings`, false},
		{"env value", head + "[app.env]\nA = 1\n", `6: app "x": key env.A: want a string, got an integer`, false},
		{"env name", head + "env = { \"A-B\" = \"c\" }\n", `5: app "x": key env.A-B: bad environment variable name`, false},
		{"workdir", head + "workdir = \"tmp\"\n", `5: app "x": key workdir: workdir "tmp": want an absolute path`, false},
		{"after", head + "after = [\"org..x\"]\n", `5: app "x": key after: bad bus name "org..x": empty element`, false},
		{"bad duration", head + "grace = \"2 seconds\"\n", `5: app "x": key grace: bad duration "2 seconds"`, false},
		{"duration type", head + "grace = 2\n", `5: app "x": key grace: want a duration string such as "2s"`, false},
		{"negative duration", head + "grace = \"-1s\"\n", `5: app "x": key grace: duration "-1s" must be more than zero`, false},
		{"zero timeout", head + "ready_timeout = \"0s\"\n", `5: app "x": key ready_timeout: duration "0s" must be more than zero`, false},
		{"stop timeout", head + "stop_timeout = \"x\"\n", `5: app "x": key stop_timeout: bad duration`, false},
		{"restart window", head + "restart_window = true\n", `5: app "x": key restart_window: want a duration string`, false},
		{"max restarts", head + "max_restarts = 0\n", `5: app "x": key max_restarts: want a whole number from 1 to 1000, got 0`, false},
		{"max restarts type", head + "max_restarts = \"5\"\n", `5: app "x": key max_restarts: want a whole number from 1 to 1000, got "5"`, false},
		{"enabled type", head + "enabled = \"no\"\n", `5: app "x": key enabled: want true or false, got a string`, false},
		{"shell type", head + "shell = 1\n", `5: app "x": key shell: want true or false`, false},
		{"icon", head + "icon = \"icons/x.png\"\n", `5: app "x": key icon: icon "icons/x.png": want an icon name or an absolute path`, false},
		{"desktop", head + "desktop = \"a/b.desktop\"\n", `5: app "x": key desktop: desktop "a/b.desktop"`, false},
		{"unit type", head + "unit = [\"a.service\"]\n", `5: app "x": key unit: want a string, got an array`, false},
		{"unit scope", head + "unit = \"app-gnome-foo-1234.scope\"\n", `5: app "x": key unit: unit "app-gnome-foo-1234.scope": want a service`, false},
		{"unit template", head + "unit = \"app-dunst@.service\"\n", `5: app "x": key unit: unit "app-dunst@.service": a template cannot be started`, false},
		{"unit character", head + "unit = \"my app.service\"\n", `5: app "x": key unit: unit "my app.service": character ' ' is not allowed`, false},
		{"unit empty", head + "unit = \".service\"\n", `5: app "x": key unit: unit ".service": no name before .service`, false},
		{"unit long", head + "unit = \"" + strings.Repeat("a", 250) + ".service\"\n", `5: app "x": key unit: unit "` + strings.Repeat("a", 250) + `.service": longer than 255 characters`, false},
		{"unit of busmedic", head + "unit = \"busmedic.service\"\n", `5: app "x": key unit: unit "busmedic.service" is busmedic's own`, false},
		{"signal unused", head + "signal = \"HUP\"\n", `5: warning: app "x": key signal: signal is used only with action = "signal"`, true},
		{"hook unused", head + "hook = [\"/bin/true\"]\n", `5: warning: app "x": key hook: hook is used only with action = "hook"`, true},
		{"inline app line", "app = [\n  { id = \"x\" },\n]\n", `2: app "x": key names: no matcher`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := Parse("f.toml", []byte(tt.text))
			var got string
			if tt.warning {
				if err != nil {
					t.Fatalf("want only a warning, got error %v", err)
				}
				got = set.Warnings().Error()
			} else {
				var es Errors
				if !errors.As(err, &es) {
					t.Fatalf("want Errors, got %v (%T)", err, err)
				}
				got = err.Error()
			}
			if !strings.Contains(got, "f.toml:"+tt.want) {
				t.Errorf("problems:\n%s\nwant a line containing:\nf.toml:%s", got, tt.want)
			}
		})
	}
}

// TestAllErrors checks that one pass reports every problem, sorted by line.
func TestAllErrors(t *testing.T) {
	text := `version = 1
[[app]]
id = "a"
grace = "soon"
names = ["bad"]

[[app]]
id = "b"
exe = "relative"
colour = "red"
`
	_, err := Parse("f.toml", []byte(text))
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("want Errors, got %v", err)
	}
	want := []string{
		`f.toml:4: app "a": key grace: bad duration "soon"`,
		`f.toml:5: app "a": key names: bad bus name "bad"`,
		`f.toml:9: app "b": key exe: exe "relative"`,
		`f.toml:10: app "b": key colour: unknown key`,
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("problem %d = %q, want prefix %q", i, lines[i], w)
		}
	}
	if es[0].Line != 4 || es[0].App != "a" || es[0].Key != "grace" || es[0].File != "f.toml" {
		t.Errorf("first Error = %+v", es[0])
	}
}

func TestDisabledNeedsOnlyID(t *testing.T) {
	set, err := Parse("f.toml", []byte("[[app]]\nid = \"x\"\nenabled = false\n"))
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := set.Lookup("x"); !ok || r.Enabled {
		t.Errorf("Lookup = %+v, %v", r, ok)
	}
}

func TestCheckBusName(t *testing.T) {
	good := []string{"org.freedesktop.Notifications", "org.xfce.Panel", "a.b", "_a.b-c", "com.example.App_1"}
	bad := []string{"", "org", ":1.2", "org.", ".org", "org.1a", "org.ex ample", "org.exämple", strings.Repeat("a.", 128) + "a"}
	for _, n := range good {
		if err := checkBusName(n); err != nil {
			t.Errorf("checkBusName(%q) = %v", n, err)
		}
	}
	for _, n := range bad {
		if err := checkBusName(n); err == nil {
			t.Errorf("checkBusName(%q) = nil, want an error", n)
		}
	}
}

func TestFormatRuleRoundTrip(t *testing.T) {
	r := NewRule("weird")
	r.Name = "Quote \" back\\slash\ttab é \x01"
	r.Names = []string{"org.example.Weird"}
	r.Exec = []string{"/bin/sh", "-c", "echo 'hi'\n"}
	r.Env = map[string]string{"B": "2", "A": "1"}
	r.Grace = 90 * time.Second
	r.StopTimeout = 1500 * time.Millisecond
	r.Enabled = false
	set, err := Parse("f.toml", []byte(FormatRule(r)))
	if err != nil {
		t.Fatalf("%v\n%s", err, FormatRule(r))
	}
	got, _ := set.Lookup("weird")
	got.Source, got.Line = "", 0
	if got.Name != r.Name || strings.Join(got.Exec, "|") != strings.Join(r.Exec, "|") ||
		got.Env["A"] != "1" || got.Grace != r.Grace || got.StopTimeout != r.StopTimeout || got.Enabled {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, r)
	}
	if !strings.Contains(FormatRule(r), `grace = "1m30s"`) {
		t.Errorf("FormatRule:\n%s", FormatRule(r))
	}
}
