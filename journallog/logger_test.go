package journallog

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/coreos/go-systemd/v22/journal"
)

// TestLoggerJournal: with stderr the journal stream systemd made (its
// dev:inode in JOURNAL_STREAM), every record carries its priority for
// journalctl; anywhere else the log is plain text, as before.
func TestLoggerJournal(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))

	log := NewLogger(f, slog.LevelDebug)
	log.Error("e")
	log.Warn("w")
	log.Info("i")
	log.Debug("d")
	data, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	// Without a journal to take them (no /run/systemd/journal/socket, as
	// in a build container), the records fall back to the stream; with
	// one, they went there (test/systemd reads them back).
	want := "<3>level=ERROR msg=e\n<4>level=WARN msg=w\n<6>level=INFO msg=i\n<7>level=DEBUG msg=d\n"
	if journal.Enabled() {
		want = ""
	}
	if string(data) != want {
		t.Errorf("log to the journal stream:\n%s\nwant:\n%s", data, want)
	}

	// Not the stream (a buffer, or a file JOURNAL_STREAM does not name):
	// text with the time, no prefix.
	var buf bytes.Buffer
	NewLogger(&buf, slog.LevelInfo).Warn("w")
	other, err := os.Create(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	NewLogger(other, slog.LevelInfo).Warn("w")
	otherData, err := os.ReadFile(other.Name())
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{buf.String(), string(otherData)} {
		if !strings.HasPrefix(out, "time=") || !strings.HasSuffix(out, " level=WARN msg=w\n") {
			t.Errorf("log off the journal: %q", out)
		}
	}
}
