package relaunch

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"busmedic/relaunch/control"
	"busmedic/watcher/bustest"
)

// logRecorder is a log handler that keeps the level and message of every
// record, and passes it on to next.
type logRecorder struct {
	next    slog.Handler
	mu      *sync.Mutex
	records *[]slog.Record
}

func newLogRecorder(t *testing.T) logRecorder {
	return logRecorder{next: testLogger(t).Handler(), mu: &sync.Mutex{}, records: new([]slog.Record)}
}

func (h logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h logRecorder) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	*h.records = append(*h.records, r.Clone())
	h.mu.Unlock()
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h logRecorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	h.next = h.next.WithAttrs(attrs)
	return h
}

func (h logRecorder) WithGroup(name string) slog.Handler {
	h.next = h.next.WithGroup(name)
	return h
}

// count returns how many records of level began with prefix.
func (h logRecorder) count(level slog.Level, prefix string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range *h.records {
		if r.Level == level && strings.HasPrefix(r.Message, prefix) {
			n++
		}
	}
	return n
}

// With the state directory replaced by a file, apps are relaunched all the
// same, with their output to /dev/null; the history and the logs that
// cannot be written are one warning each, not one per recovery or event.
func TestStateDirIsAFile(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	if err := os.WriteFile(state, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	rec := newLogRecorder(t)
	h := newHarness(t, `
[[app]]
id = "exiter"
names = ["org.example.Exiter"]
exec = ["TESTAPP", "-name", "org.example.Exiter", "-mode", "exit"]
grace = "100ms"
`, func(c *Config, _ *bustest.Bus) {
		c.StateDir, c.Logger = state, slog.New(rec)
		c.logEvery = time.Nanosecond // look at the logs at every event
	})
	h.bus.StartApp("-name", "org.example.Exiter", "-mode", "exit")
	pid := h.waitOwner("org.example.Exiter", 0)
	for i := range 3 {
		j := jobOf(t, h.crash(), "exiter")
		if j.Outcome != control.Relaunched {
			t.Fatalf("crash %d: %s %q, want relaunched", i+1, j.Outcome, j.Reason)
		}
		if !strings.Contains(j.Reason, "output to /dev/null") {
			t.Errorf("crash %d: the job does not say where the output went: %q", i+1, j.Reason)
		}
		pid = h.waitOwner("org.example.Exiter", pid)
		if pid != j.PID {
			t.Fatalf("crash %d: org.example.Exiter owned by pid %d, not the relaunched %d", i+1, pid, j.PID)
		}
		if out := fdTarget(t, pid, 1); out != "/dev/null" {
			t.Errorf("crash %d: the app's output goes to %s, want /dev/null", i+1, out)
		}
	}
	if n := rec.count(slog.LevelWarn, "history not written"); n != 1 {
		t.Errorf("%d warnings that the history was not written, want 1", n)
	}
	if n := rec.count(slog.LevelWarn, "app logs cannot be written"); n != 1 {
		t.Errorf("%d warnings that the logs cannot be written, want 1", n)
	}
	if b, _ := os.ReadFile(state); len(b) != 0 {
		t.Errorf("the file in the way was written: %q", b)
	}
}

// capLogs warns once that the logs cannot be written, and says when they
// can again.
func TestCapLogsWarnsOnce(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	if err := os.WriteFile(state, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	rec := newLogRecorder(t)
	e := New(Config{StateDir: state, Logger: slog.New(rec), logEvery: time.Nanosecond})
	now := time.Now()
	for i := range 5 {
		e.capLogs(now.Add(time.Duration(i) * time.Second))
	}
	if n := rec.count(slog.LevelWarn, "app logs cannot be written"); n != 1 {
		t.Errorf("%d warnings after 5 looks, want 1", n)
	}
	if err := os.Remove(state); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(state, "logs"), 0o700); err != nil {
		t.Fatal(err)
	}
	e.capLogs(now.Add(time.Minute))
	e.capLogs(now.Add(2 * time.Minute))
	if n := rec.count(slog.LevelInfo, "app logs can be written again"); n != 1 {
		t.Errorf("%d infos that the logs can be written again, want 1", n)
	}
	if err := os.RemoveAll(state); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(state, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	e.capLogs(now.Add(3 * time.Minute))
	if n := rec.count(slog.LevelWarn, "app logs cannot be written"); n != 2 {
		t.Errorf("%d warnings, want 2: broken again after working", n)
	}
}
