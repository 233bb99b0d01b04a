package assets

import (
	"strings"
	"testing"
)

func TestExecQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/usr/bin/busmedic", "/usr/bin/busmedic"},
		{"/home/ada/my bin/busmedic", `"/home/ada/my bin/busmedic"`},
		{`/opt/a"b`, `"/opt/a\"b"`},
		{"/opt/100%/busmedic", "/opt/100%%/busmedic"},
		{"/opt/$x", `"/opt/\$x"`},
		{"", `""`},
	} {
		if got := execQuote(tc.in); got != tc.want {
			t.Errorf("execQuote(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestAutostartEntry(t *testing.T) {
	got := string(AutostartEntry([]string{`/home/ada/a b\c/busmedic`, "run"}))
	// Quoted for Exec, then the backslash escaped again for the file.
	if want := "\nExec=\"/home/ada/a b\\\\\\\\c/busmedic\" run\n"; !strings.Contains(got, want) {
		t.Errorf("entry lacks %q:\n%s", want, got)
	}
}

func TestUserUnit(t *testing.T) {
	got := string(UserUnit("/home/ada/.local/bin/busmedic", "default.target"))
	for _, want := range []string{"\nExecStart=/home/ada/.local/bin/busmedic run\n", "\nWantedBy=default.target\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("unit lacks %q:\n%s", want, got)
		}
	}
}
