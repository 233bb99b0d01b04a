package relaunch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"busmedic/relaunch/control"
)

func TestHistoryRotates(t *testing.T) {
	dir := t.TempDir()
	h := historyLog{path: filepath.Join(dir, historyFile), cap: 4096}
	big := strings.Repeat("x", 500)
	for i := range 40 {
		r := control.Recovery{Bus: "session", ID: big, OldID: string(rune('a' + i%26)), Started: time.Unix(int64(i), 0)}
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
	if err := h.append(control.Recovery{Bus: "after-crash"}); err != nil {
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

// A history that cannot be written is reported once per kind of failure,
// not at every recovery, until a line is written again.
func TestHistoryFailureReportedOnce(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	if err := os.WriteFile(state, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h := historyLog{path: filepath.Join(state, historyFile), cap: historyCap}
	err := h.append(control.Recovery{Bus: "session"})
	if err == nil || !strings.Contains(err.Error(), "mkdir "+state+": not a directory") {
		t.Fatalf("first failure: %v, want the mkdir error", err)
	}
	for i := range 3 {
		if err := h.append(control.Recovery{Bus: "session"}); err != nil {
			t.Errorf("failure %d again: %v, want nil (reported already)", i+2, err)
		}
	}
	// Fixed: written; broken again: reported again.
	if err := os.Remove(state); err != nil {
		t.Fatal(err)
	}
	if err := h.append(control.Recovery{Bus: "fixed"}); err != nil {
		t.Fatalf("after the fix: %v", err)
	}
	if all := must(h.read(0)); len(all) != 1 || all[0].Bus != "fixed" {
		t.Errorf("history after the fix: %+v", all)
	}
	if err := os.RemoveAll(state); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := h.append(control.Recovery{Bus: "session"}); err == nil {
		t.Error("the same failure after a success was not reported")
	}
	// Another kind of failure is news.
	if err := os.Remove(state); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(h.path, 0o700); err != nil { // the file is a directory
		t.Fatal(err)
	}
	if err := h.append(control.Recovery{Bus: "session"}); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("another kind of failure: %v, want it reported", err)
	}
	if err := h.append(control.Recovery{Bus: "session"}); err != nil {
		t.Errorf("that failure again: %v, want nil", err)
	}
}
