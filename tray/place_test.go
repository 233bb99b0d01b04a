package tray

import (
	"slices"
	"testing"
)

// An item keeps its slot while it stays listed, so that a click on the
// slot acts on what it showed; new items take slots that were empty
// before, not ones just left.
func TestPlace(t *testing.T) {
	shown := func(prev, ids []string, n int) []string {
		out := make([]string, n)
		for s, i := range place(prev, ids, n) {
			if i >= 0 {
				out[s] = ids[i]
			}
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		prev, ids []string
		want      []string
	}{
		{"first", nil, []string{"a", "b"}, []string{"a", "b", "", ""}},
		{"one leaves: the others stay where they were", []string{"a", "b", "c", ""}, []string{"b", "c"}, []string{"", "b", "c", ""}},
		{"one comes: an empty slot, not the one just left", []string{"a", "b", "c", ""}, []string{"b", "c", "d"}, []string{"", "b", "c", "d"}},
		{"no slot empty before: the one just left", []string{"a", "b", "c", "d"}, []string{"b", "c", "d", "e"}, []string{"e", "b", "c", "d"}},
		{"reordered: each where it was", []string{"a", "b", ""}, []string{"b", "a"}, []string{"a", "b", ""}},
		{"more than the slots", []string{"a", "", ""}, []string{"a", "b", "c", "d"}, []string{"a", "b", "c"}},
		{"listed twice", []string{"a", ""}, []string{"a", "a"}, []string{"a", "a"}},
		{"emptied", []string{"a", "b"}, nil, []string{"", ""}},
	} {
		n := max(len(tc.want), 1)
		if got := shown(tc.prev, tc.ids, n); !slices.Equal(got, tc.want) {
			t.Errorf("%s: slots %q, want %q", tc.name, got, tc.want)
		}
	}
}
