package relaunch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHistoryRotates(t *testing.T) {
	dir := t.TempDir()
	h := historyLog{path: filepath.Join(dir, HistoryFile), cap: 4096}
	big := strings.Repeat("x", 500)
	for i := range 40 {
		r := Recovery{Bus: "session", ID: big, OldID: string(rune('a' + i%26)), Started: time.Unix(int64(i), 0)}
		if err := h.append(r); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{h.path, h.path + ".1"} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() > h.cap {
			t.Errorf("%s is %d bytes, cap %d", p, st.Size(), h.cap)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", p, st.Mode().Perm())
		}
	}
	got, err := h.read(3)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Started.Unix() != 39 || got[2].Started.Unix() != 37 {
		t.Errorf("read(3) = %d entries starting %v, want the newest first", len(got), got[0].Started)
	}
	// A torn last line (crash mid-write) is skipped.
	f, _ := os.OpenFile(h.path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"bus":"sess`)
	f.Close()
	n := len(must(h.read(0)))
	if err := h.append(Recovery{Bus: "after-crash"}); err != nil {
		t.Fatal(err)
	}
	if all := must(h.read(0)); len(all) != n+1 || all[0].Bus != "after-crash" {
		t.Errorf("after a torn line: %d entries (want %d), newest %q", len(all), n+1, all[0].Bus)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
