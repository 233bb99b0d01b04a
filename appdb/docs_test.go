package appdb

import (
	"os"
	"strings"
	"testing"
)

// TestDocExamples checks that every TOML example in docs/rules.md loads.
func TestDocExamples(t *testing.T) {
	data, err := os.ReadFile("../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(data), "```toml\n")[1:]
	if len(blocks) < 5 {
		t.Fatalf("found %d TOML examples", len(blocks))
	}
	ids := map[string]bool{}
	for i, b := range blocks {
		text, _, _ := strings.Cut(b, "```")
		set, err := Parse("docs/rules.md example", []byte(text))
		if err != nil {
			t.Errorf("example %d does not load: %v\n%s", i+1, err, text)
			continue
		}
		for _, r := range set.Rules() {
			ids[r.ID] = true
		}
	}
	for _, id := range []string{"dunst", "xfce4-panel", "nm-applet"} {
		if !ids[id] {
			t.Errorf("docs lack a complete example for %s", id)
		}
	}
}
