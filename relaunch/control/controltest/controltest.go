// Package controltest gives a test a stand-in busmedic daemon behind a real
// control socket, in the manner of net/http/httptest: the tray, the rules
// editor and the control client are then tested without the recovery
// engine, against the same socket and protocol they use for real.
package controltest

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"busmedic/relaunch/control"
)

// Daemon holds a status that a test sets, and tells watching clients when
// it changes. A test embeds it in its own backend and adds the requests it
// wants to answer; the others fall to the nil control.Backend below and
// panic, which is worth knowing.
type Daemon struct {
	control.Backend

	mu      sync.Mutex
	status  control.Status
	changed chan struct{}
	notices chan control.Notice
	kept    chan control.KeptReport
}

// NewDaemon returns a Daemon whose status is st.
func NewDaemon(st control.Status) *Daemon {
	return &Daemon{status: st, changed: make(chan struct{}, 1), notices: make(chan control.Notice, 64),
		kept: make(chan control.KeptReport, 64)}
}

// ReportTray puts the tray child's report in the status, as the daemon
// does.
func (d *Daemon) ReportTray(h control.TrayHost) {
	d.Set(func(s *control.Status) {
		if s.Tray == nil {
			s.Tray = &control.TrayStatus{Show: control.TrayAlways}
		}
		t := *s.Tray
		t.Host = &h
		s.Tray = &t
	})
}

// ReportKept puts the keeper's apps of r.Bus in the status, as the daemon
// does, and hands r to the test (Kept).
func (d *Daemon) ReportKept(r control.KeptReport) {
	d.Set(func(s *control.Status) {
		s.Kept = slices.DeleteFunc(slices.Clone(s.Kept), func(a control.KeptApp) bool { return a.Bus == r.Bus })
		s.Kept = append(s.Kept, r.Apps...)
	})
	select {
	case d.kept <- r:
	default: // the test reads none
	}
}

// Kept returns the keeper's reports, in order.
func (d *Daemon) Kept() <-chan control.KeptReport { return d.kept }

// Notify records n: Notices gives it to the test.
func (d *Daemon) Notify(n control.Notice) error {
	select {
	case d.notices <- n:
	default: // the test reads none
	}
	return nil
}

// Notices returns the notifications clients asked for, in order.
func (d *Daemon) Notices() <-chan control.Notice { return d.notices }

// Status returns the status as last set.
func (d *Daemon) Status() control.Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.status
}

// Set changes the status with f and tells the clients that watch it.
func (d *Daemon) Set(f func(*control.Status)) {
	d.mu.Lock()
	f(&d.status)
	d.mu.Unlock()
	select {
	case d.changed <- struct{}{}:
	default:
	}
}

// Changed is the control.Backend's change signal.
func (d *Daemon) Changed() <-chan struct{} { return d.changed }

// Serve serves b on a control socket in a new temporary directory until the
// test ends, and returns the socket's path. The directory is short: socket
// paths are limited to 107 bytes, and test names make t.TempDir long.
func Serve(t testing.TB, b control.Backend) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "controltest")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "busmedic", "control.sock")
	srv, err := control.Listen(path, slog.New(slog.DiscardHandler))
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, b) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controltest: Serve: %v", err)
		}
		os.RemoveAll(dir)
	})
	return path
}
