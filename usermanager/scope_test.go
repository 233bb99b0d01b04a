package usermanager

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// escapes are what systemd-escape 252 prints for each string.
var escapes = []struct{ in, want string }{
	{"dunst", "dunst"},
	{"xfce4-panel", `xfce4\x2dpanel`},
	{".hidden", `\x2ehidden`},
	{"org.kde.plasmashell", "org.kde.plasmashell"},
	{"casualty:foo:12", "casualty:foo:12"},
	{"a_b", "a_b"},
	{"UP", "UP"},
	{"a b", `a\x20b`},
	{"é", `\xc3\xa9`},
	{`x\y`, `x\x5cy`},
	{"a/b", "a-b"},
	{"/a/", "-a-"},
	{"", ""},
}

func TestEscapeUnitName(t *testing.T) {
	for _, tc := range escapes {
		if got := EscapeUnitName(tc.in); got != tc.want {
			t.Errorf("EscapeUnitName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Where systemd-escape is installed, it has the last word.
func TestEscapeUnitNameAsSystemdEscape(t *testing.T) {
	if _, err := exec.LookPath("systemd-escape"); err != nil {
		t.Skip("no systemd-escape here")
	}
	for _, tc := range escapes {
		if tc.in == "" {
			continue // systemd-escape refuses an empty string
		}
		out, err := exec.CommandContext(context.Background(), "systemd-escape", "--", tc.in).Output()
		if err != nil {
			t.Fatalf("systemd-escape %q: %v", tc.in, err)
		}
		if want, got := strings.TrimSuffix(string(out), "\n"), EscapeUnitName(tc.in); got != want {
			t.Errorf("EscapeUnitName(%q) = %q, systemd-escape says %q", tc.in, got, want)
		}
	}
}

func TestScopeName(t *testing.T) {
	for _, tc := range []struct {
		id   string
		pid  int
		want string
	}{
		{"dunst", 1234, "app-busmedic-dunst-1234.scope"},
		// The '-' of the id is escaped: the ones left separate the
		// launcher, the id and the pid, so the id can be read back.
		{"xfce4-panel", 99, `app-busmedic-xfce4\x2dpanel-99.scope`},
		{"casualty:nm-applet:4321", 7, `app-busmedic-casualty:nm\x2dapplet:4321-7.scope`},
	} {
		if got := ScopeName(Launcher, tc.id, tc.pid); got != tc.want {
			t.Errorf("ScopeName(%q, %d) = %q, want %q", tc.id, tc.pid, got, tc.want)
		}
	}
}

// A long id is cut so that the name is one systemd takes (255 bytes at
// most), never in the middle of an escape.
func TestScopeNameLong(t *testing.T) {
	for _, id := range []string{strings.Repeat("a", 300), strings.Repeat("a-", 150), "b" + strings.Repeat("-", 100)} {
		for _, pid := range []int{1, 4194304} {
			name := ScopeName(Launcher, id, pid)
			if len(name) > unitNameMax {
				t.Errorf("ScopeName(%d bytes, %d) is %d bytes long", len(id), pid, len(name))
			}
			suffix := "-" + strconv.Itoa(pid) + ".scope"
			if !strings.HasPrefix(name, "app-busmedic-") || !strings.HasSuffix(name, suffix) {
				t.Errorf("ScopeName = %q: not app-busmedic-…%s", name, suffix)
			}
			body := strings.TrimSuffix(strings.TrimPrefix(name, "app-busmedic-"), suffix)
			if strings.Contains(body, "-") {
				t.Errorf("ScopeName = %q: a '-' in the id part", name)
			}
			if !strings.HasPrefix(EscapeUnitName(id), body) {
				t.Errorf("ScopeName = %q: the id part is not a prefix of the escaped id", name)
			}
			// Every '\' starts a whole \xNN.
			for i := 0; i < len(body); i++ {
				if body[i] == '\\' && (i+4 > len(body) || body[i+1] != 'x') {
					t.Errorf("ScopeName = %q: escape cut at byte %d", name, i)
				}
			}
		}
	}
}
