package appdb

import (
	"strings"
	"testing"
)

// TestOverlapWarnings: two enabled rules that give the same name, exe,
// argv0 or cmdline on a bus in common are warned about at the later one's
// key, naming the earlier one and its line; the rules still load.
func TestOverlapWarnings(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want []string // each warning, as Error() writes it
	}{
		{"same exe", `
[[app]]
id = "dunst"
exe = "/usr/bin/dunst"

[[app]]
id = "dunst2"
exe = "/usr/bin/dunst"
`, []string{`f.toml:8: warning: app "dunst2": key exe: "/usr/bin/dunst" is also app "dunst"'s (line 2), which comes first: this rule never applies to that program`}},
		{"same exe, names of its own", `
[[app]]
id = "dunst"
exe = "/usr/bin/dunst"

[[app]]
id = "notes"
names = ["org.example.Notes"]
exe = "/usr/bin/dunst"
`, []string{`f.toml:9: warning: app "notes": key exe: "/usr/bin/dunst" is also app "dunst"'s (line 2), which comes first: this rule applies to that program only through its names`}},
		{"a shared name", `
[[app]]
id = "a"
names = ["org.example.A", "org.example.Shared"]

[[app]]
id = "b"
names = ["org.example.B", "org.example.Shared"]
`, []string{`f.toml:8: warning: app "b": key names: "org.example.Shared" is also app "a"'s (line 2), which comes first: this rule never applies to its owner`}},
		{"same cmdline", `
[[app]]
id = "a"
cmdline = "python3 /opt/tray.py*"

[[app]]
id = "b"
exe = "/usr/bin/b"
cmdline = "python3 /opt/tray.py*"
`, []string{`f.toml:9: warning: app "b": key cmdline: "python3 /opt/tray.py*" is also app "a"'s (line 2), which comes first: this rule applies to those processes only through its exe`}},
		{"three alike", `
[[app]]
id = "a"
exe = "/usr/bin/a"

[[app]]
id = "b"
exe = "/usr/bin/a"

[[app]]
id = "c"
exe = "/usr/bin/a"
`, []string{
			`f.toml:8: warning: app "b": key exe: "/usr/bin/a" is also app "a"'s (line 2), which comes first: this rule never applies to that program`,
			`f.toml:12: warning: app "c": key exe: "/usr/bin/a" is also app "a"'s (line 2), which comes first: this rule never applies to that program`,
		}},
		{"other buses", `
[[app]]
id = "a"
exe = "/usr/bin/a"

[[app]]
id = "b"
bus = "system"
exe = "/usr/bin/a"
`, nil},
		{"both buses meet", `
[[app]]
id = "a"
bus = "both"
exe = "/usr/bin/a"

[[app]]
id = "b"
bus = "system"
exe = "/usr/bin/a"
`, []string{`f.toml:10: warning: app "b": key exe: "/usr/bin/a" is also app "a"'s (line 2), which comes first: this rule never applies to that program`}},
		{"disabled", `
[[app]]
id = "a"
exe = "/usr/bin/a"
enabled = false

[[app]]
id = "b"
exe = "/usr/bin/a"
`, nil},
		{"different keys", `
[[app]]
id = "a"
names = ["org.example.A"]

[[app]]
id = "b"
exe = "/usr/bin/a"
`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set, err := Parse("f.toml", []byte(tt.toml))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range set.Warnings() {
				if w.Key != "exec" { // programs not installed here
					got = append(got, w.Error())
				}
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}
