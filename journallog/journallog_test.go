package journallog

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

func TestPriority(t *testing.T) {
	for _, tc := range []struct {
		level slog.Level
		want  string
	}{
		{slog.LevelError, "<3>"},
		{slog.LevelError + 4, "<3>"},
		{slog.LevelWarn, "<4>"},
		{slog.LevelWarn + 2, "<4>"},
		{slog.LevelInfo, "<6>"},
		{slog.LevelInfo + 2, "<6>"},
		{slog.LevelDebug, "<7>"},
		{slog.LevelDebug - 4, "<7>"},
	} {
		t.Run(tc.level.String(), func(t *testing.T) {
			var buf bytes.Buffer
			log := slog.New(NewHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug - 4}))
			log.Log(t.Context(), tc.level, "hello")
			if !strings.HasPrefix(buf.String(), tc.want) {
				t.Errorf("record at %v: %q, want the prefix %s", tc.level, buf.String(), tc.want)
			}
		})
	}
}

// TestHandler: one line per record, prefixed; the text format otherwise,
// without the time; the level, attributes and groups as slog's text
// handler has them.
func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	log.Debug("not shown")
	log.With("component", "tray").Warn("two\nlines", "err", fmt.Errorf("a\nb"))
	log.WithGroup("app").Error("relaunch failed", "id", "dunst")
	log.Info("busmedic running")
	want := "<4>level=WARN msg=\"two\\nlines\" component=tray err=\"a\\nb\"\n" +
		"<3>level=ERROR msg=\"relaunch failed\" app.id=dunst\n" +
		"<6>level=INFO msg=\"busmedic running\"\n"
	if got := buf.String(); got != want {
		t.Errorf("log:\n%s\nwant:\n%s", got, want)
	}
}

// TestHandlerKeepsReplaceAttr: the caller's ReplaceAttr still applies.
func TestHandlerKeepsReplaceAttr(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewHandler(&buf, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == "secret" {
			a.Value = slog.StringValue("-")
		}
		return a
	}}))
	log.Info("x", "secret", "hunter2")
	if got, want := buf.String(), "<6>level=INFO msg=x secret=-\n"; got != want {
		t.Errorf("log %q, want %q", got, want)
	}
}

// TestHandlerConcurrent: records logged at once at different priorities
// never share a line.
func TestHandlerConcurrent(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewHandler(&buf, nil))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				if i%2 == 0 {
					log.Info("info", "i", i, "j", j)
				} else {
					log.Error("error", "i", i, "j", j)
				}
			}
		})
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 8*50 {
		t.Fatalf("%d lines, want %d", len(lines), 8*50)
	}
	for _, l := range lines {
		if !(strings.HasPrefix(l, "<6>level=INFO msg=info ") || strings.HasPrefix(l, "<3>level=ERROR msg=error ")) || strings.Count(l, "msg=") != 1 {
			t.Fatalf("mixed line %q", l)
		}
	}
}

// journalFile makes a file and points JOURNAL_STREAM at it, as systemd
// does for the stream it connects a service's stderr to.
func journalFile(t *testing.T) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "stream"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", st.Dev, st.Ino))
	return f
}

func TestIsJournal(t *testing.T) {
	f := journalFile(t)
	if !IsJournal(f) {
		t.Errorf("IsJournal(%s) with JOURNAL_STREAM=%s: false", f.Name(), os.Getenv("JOURNAL_STREAM"))
	}
	// Another file on the same device is not the stream: busmedic's
	// stderr redirected by hand logs text.
	other, err := os.Create(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if IsJournal(other) {
		t.Error("IsJournal of another file: true")
	}
	for _, env := range []string{"", "garbage", "1:"} {
		t.Setenv("JOURNAL_STREAM", env)
		if IsJournal(f) {
			t.Errorf("IsJournal with JOURNAL_STREAM=%q: true", env)
		}
	}
	if IsJournal(nil) {
		t.Error("IsJournal(nil): true")
	}
}

func ExampleIsJournal() {
	// The log of a program that systemd may run as a service: priorities
	// for the journal, plain text on a terminal or in a file.
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if IsJournal(os.Stderr) {
		h = NewHandler(os.Stderr, opts)
	}
	slog.New(h).Info("started")
}

func ExampleNewHandler() {
	// busmedic does this only when IsJournal(os.Stderr).
	log := slog.New(NewHandler(os.Stdout, nil))
	log.Info("busmedic running", "socket", "/run/user/1000/busmedic/control.sock")
	log.Warn("rules not loaded", "err", "line 3: unknown key")
	// Output:
	// <6>level=INFO msg="busmedic running" socket=/run/user/1000/busmedic/control.sock
	// <4>level=WARN msg="rules not loaded" err="line 3: unknown key"
}
