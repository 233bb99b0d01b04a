package control_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"busmedic/relaunch/control"
	"busmedic/relaunch/control/controltest"
)

// chanWriter passes each write on, as "busmedic status --follow"'s
// reader would see it come.
type chanWriter chan string

func (w chanWriter) Write(p []byte) (int, error) {
	w <- string(p)
	return len(p), nil
}

func (w chanWriter) next(t *testing.T) string {
	t.Helper()
	select {
	case s := <-w:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("nothing written within 10s")
	}
	return ""
}

// WriteFollow writes the status, then each change that shows under the
// time of day, and tells why while there is no daemon, until ctx ends.
func TestWriteFollow(t *testing.T) {
	path := filepath.Join(shortTempDir(t), "control.sock")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := make(chanWriter, 16)
	aways := make(chan error, 16)
	done := make(chan error, 1)
	go func() {
		done <- control.NewClient(path).WriteFollow(ctx, w, false, func(err error) { aways <- err })
	}()
	if err := <-aways; !errors.Is(err, control.ErrNotRunning) {
		t.Fatalf("away(%v) with no daemon, want ErrNotRunning", err)
	}

	d := controltest.NewDaemon(control.Status{Buses: []control.BusStatus{{Name: "session", Up: true}}})
	serveAt(t, path, d)
	if first := w.next(t); !strings.HasPrefix(first, "session bus: up") {
		t.Errorf("first status:\n%s\nwant the session bus up, with no time line above it", first)
	}
	// A change that the text does not show writes nothing: the next
	// write is the pause.
	d.Set(func(st *control.Status) { st.SessionRestart = "dbus.service" })
	d.Set(func(st *control.Status) { st.Paused = true })
	second := w.next(t)
	head, rest, _ := strings.Cut(strings.TrimPrefix(second, "\n"), "\n")
	if _, err := time.Parse("-- 15:04:05 --", head); err != nil || !strings.Contains(rest, "Recovery is paused") {
		t.Errorf("second status:\n%s\nwant it under the time of day, paused", second)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("WriteFollow after ctx ended: %v, want nil", err)
	}
	for len(aways) > 0 {
		if err := <-aways; err != nil {
			t.Errorf("away(%v) while the daemon answered", err)
		}
	}
}

// With asJSON, each status is one line of JSON; a failed write ends it.
func TestWriteFollowJSON(t *testing.T) {
	d := controltest.NewDaemon(control.Status{Buses: []control.BusStatus{{Name: "session", Up: true}}})
	c := control.NewClient(controltest.Serve(t, d))
	w := &closingPipe{lines: make(chan string, 16)}
	done := make(chan error, 1)
	go func() { done <- c.WriteFollow(context.Background(), w, true, func(error) {}) }()
	for i := range 2 {
		var line string
		select {
		case line = <-w.lines:
		case <-time.After(10 * time.Second):
			t.Fatal("no status within 10s")
		}
		var st control.Status
		if !strings.HasSuffix(line, "}\n") || strings.Count(line, "\n") != 1 || json.Unmarshal([]byte(line), &st) != nil {
			t.Fatalf("status %d: %q, want one line of JSON", i, line)
		}
		if i == 0 {
			d.Set(func(st *control.Status) { st.Paused = true })
		} else if !st.Paused {
			t.Errorf("second status %+v, want paused", st)
		}
	}
	d.Set(func(st *control.Status) { st.Paused = false })
	select {
	case err := <-done:
		if !errors.Is(err, errClosedPipe) {
			t.Errorf("WriteFollow after a failed write: %v, want that error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WriteFollow went on after a failed write")
	}
}

var errClosedPipe = errors.New("closed pipe")

// closingPipe takes two writes, then fails as a closed pipe. Write
// runs on WriteFollow's goroutine only.
type closingPipe struct {
	lines chan string
	n     int
}

func (w *closingPipe) Write(p []byte) (int, error) {
	if w.n++; w.n > 2 {
		return 0, errClosedPipe
	}
	w.lines <- string(p)
	return len(p), nil
}
