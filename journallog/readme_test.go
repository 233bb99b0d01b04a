package journallog

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestREADMEMessageIDs: the README's table of events gives each event
// with its MESSAGE_ID, and names no other id.
func TestREADMEMessageIDs(t *testing.T) {
	data, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	row := regexp.MustCompile("(?m)^\\| `([a-z-]+)`: .*?\\| `([0-9a-f]{32})` \\|")
	for _, m := range row.FindAllStringSubmatch(string(data), -1) {
		rows[m[1]] = m[2]
	}
	for _, ev := range Events() {
		id, _ := MessageID(ev)
		if rows[ev] != id {
			t.Errorf("README: event %s has MESSAGE_ID %q in the table, want %s", ev, rows[ev], id)
		}
		delete(rows, ev)
	}
	for ev := range rows {
		t.Errorf("README: the table lists %s, which is no event", ev)
	}
	ids := regexp.MustCompile(`MESSAGE_ID=([0-9a-f]{32})`)
	known := map[string]bool{}
	for _, ev := range Events() {
		id, _ := MessageID(ev)
		known[id] = true
	}
	for _, m := range ids.FindAllStringSubmatch(string(data), -1) {
		if !known[m[1]] {
			t.Errorf("README: MESSAGE_ID=%s is no event's", m[1])
		}
	}
	if !strings.Contains(string(data), "journalctl --user -u busmedic") {
		t.Error("README: no journalctl line")
	}
}
