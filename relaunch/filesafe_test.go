package relaunch

import (
	"regexp"
	"testing"
)

// fileSafe does what the regular expression it replaced did (compiled at
// package initialisation, it cost every busmedic process its heap).
func TestFileSafe(t *testing.T) {
	re := regexp.MustCompile(`[^a-zA-Z0-9._-]+`)
	for _, s := range []string{"", "dunst", "xfce4-panel", "a b  c", "../../etc", "é", "naïve café", "x\xffy", "\xff\xfe", "org.kde.plasma_shell-6", "a/b:c"} {
		if got, want := fileSafe(s), re.ReplaceAllString(s, "_"); got != want {
			t.Errorf("fileSafe(%q) = %q, want %q", s, got, want)
		}
	}
}
