package appdb

import (
	"os"
	"testing"

	"busmedic/watcher"
)

func TestMatch(t *testing.T) {
	set, err := Parse("f.toml", []byte(`
[[app]]
id = "by-cmdline"
cmdline = "python3 */tray.py*"

[[app]]
id = "by-argv0"
argv0 = "xfce4-pan?l"

[[app]]
id = "by-argv0-path"
argv0 = "/opt/*/bin/app"

[[app]]
id = "by-exe"
exe = "/usr/bin/dunst"

[[app]]
id = "by-name"
names = ["org.freedesktop.Notifications"]
bus = "session"

[[app]]
id = "system"
names = ["org.blueman.Applet"]
bus = "system"

[[app]]
id = "off"
names = ["org.example.Off"]
enabled = false
`))
	if err != nil {
		t.Fatal(err)
	}
	me := os.Getuid()
	tests := []struct {
		name string
		bus  Bus
		peer watcher.Peer
		want string // "" for no match
	}{
		{"name beats exe", "", watcher.Peer{UID: me, Names: []string{"org.freedesktop.Notifications"}, Exe: "/usr/bin/dunst"}, "by-name"},
		{"exe", "", watcher.Peer{UID: me, Exe: "/usr/bin/dunst", Argv: []string{"xfce4-panel"}}, "by-exe"},
		{"deleted exe", "", watcher.Peer{UID: me, Exe: "/usr/bin/dunst (deleted)"}, "by-exe"},
		{"exe beats argv0", "", watcher.Peer{UID: -1, Exe: "/usr/bin/dunst", Argv: []string{"/usr/bin/xfce4-panel"}}, "by-exe"},
		{"argv0 base name", "", watcher.Peer{UID: me, Argv: []string{"/usr/bin/xfce4-panel", "--restart"}}, "by-argv0"},
		{"argv0 path", "", watcher.Peer{UID: me, Argv: []string{"/opt/foo/bin/app"}}, "by-argv0-path"},
		{"argv0 path needs full path", "", watcher.Peer{UID: me, Argv: []string{"app"}}, ""},
		{"argv0 beats cmdline", "", watcher.Peer{UID: me, Argv: []string{"xfce4-panel", "python3", "/x/tray.py"}}, "by-argv0"},
		{"cmdline", "", watcher.Peer{UID: me, Argv: []string{"python3", "/home/u/bin/tray.py", "--quiet"}}, "by-cmdline"},
		{"cmdline no match", "", watcher.Peer{UID: me, Argv: []string{"python3", "tray.py"}}, ""},
		{"disabled", "", watcher.Peer{UID: me, Names: []string{"org.example.Off"}}, ""},
		{"other user", "", watcher.Peer{UID: me + 1, Names: []string{"org.freedesktop.Notifications"}}, ""},
		{"on session bus", BusSession, watcher.Peer{UID: me, Names: []string{"org.freedesktop.Notifications"}}, "by-name"},
		{"wrong bus", BusSystem, watcher.Peer{UID: me, Names: []string{"org.freedesktop.Notifications"}}, ""},
		{"system bus", BusSystem, watcher.Peer{UID: me, Names: []string{"org.blueman.Applet"}}, "system"},
		{"nothing", "", watcher.Peer{UID: me, UniqueName: ":1.9"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r Rule
			var ok bool
			if tt.bus == "" {
				r, ok = set.Match(tt.peer)
			} else {
				r, ok = set.MatchBus(tt.bus, tt.peer)
			}
			if ok != (tt.want != "") || r.ID != tt.want {
				t.Errorf("match = %q, %v; want %q", r.ID, ok, tt.want)
			}
		})
	}
}

func TestGlob(t *testing.T) {
	tests := []struct {
		pat, s string
		want   bool
	}{
		{"*", "", true},
		{"a*c", "a/b c", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"[ab]x", "bx", true},
		{"[!ab]x", "bx", false},
		{"[^ab]x", "cx", true},
		{"[a-c]", "b", true},
		{"[]]", "]", true},
		{`\*`, "*", true},
		{`\*`, "x", false},
		{"a.c", "abc", false},
		{"é?", "éa", true},
		{"?", "é", true},
		{"(x)+", "(x)+", true},
		{quoteGlob("a*[b]?"), "a*[b]?", true},
	}
	for _, tt := range tests {
		re, err := compileGlob(tt.pat)
		if err != nil {
			t.Errorf("compileGlob(%q): %v", tt.pat, err)
			continue
		}
		if got := re.MatchString(tt.s); got != tt.want {
			t.Errorf("glob %q on %q = %v, want %v", tt.pat, tt.s, got, tt.want)
		}
	}
	for _, bad := range []string{"[", "[a", `a\`, "[z-a]"} {
		if _, err := compileGlob(bad); err == nil {
			t.Errorf("compileGlob(%q) succeeded", bad)
		}
	}
}
