package daemon

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"busmedic/relaunch"
	"busmedic/relaunch/control"
	"busmedic/watcher/bustest"
)

// shown records the notices a trayHost shows.
type shown struct {
	mu      sync.Mutex
	notices []relaunch.Notice
}

func (s *shown) show(_ context.Context, n relaunch.Notice) {
	s.mu.Lock()
	s.notices = append(s.notices, n)
	s.mu.Unlock()
}

func (s *shown) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.notices)
}

var (
	noWatcher = control.TrayHost{}
	held      = control.TrayHost{Watcher: true, Shown: true}
)

// TestTrayHostNotice runs the tray host policy on synctest's fake clock:
// the notice that the icon cannot show comes once, after the grace time
// without a watcher, and never in a run that has seen one.
func TestTrayHostNotice(t *testing.T) {
	for _, tc := range []struct {
		name string
		// steps are reports (nil: a new tray child starts) and waits.
		steps []any
		want  int
	}{
		{"no watcher for the grace time: said once", []any{noWatcher, noHostGrace + time.Second, noWatcher, control.TrayHost{}, time.Hour}, 1},
		{"a watcher within the grace time: nothing", []any{noWatcher, noHostGrace / 2, held, noHostGrace, noWatcher, time.Hour}, 0},
		{"a watcher comes but does not take the item yet: nothing", []any{noWatcher, control.TrayHost{Watcher: true}, time.Hour}, 0},
		{"the no-watcher reports of successive children add up", []any{noWatcher, noHostGrace / 2, nil, noWatcher, noHostGrace / 2, time.Second}, 1},
		{"a child that has not reported yet when the time is up: said after its report", []any{noWatcher, noHostGrace / 2, nil,
			noHostGrace, noWatcher, noHostGrace - time.Second}, 0},
		{"... and once its report waited the grace time", []any{noWatcher, noHostGrace / 2, nil,
			noHostGrace, noWatcher, noHostGrace + time.Second}, 1},
		{"no report at all: nothing", []any{time.Hour}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var s shown
				h := newTrayHost(s.show)
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan struct{})
				go func() {
					defer close(done)
					h.run(ctx)
				}()
				for _, step := range tc.steps {
					switch v := step.(type) {
					case nil:
						h.childStarted()
					case control.TrayHost:
						h.report(v)
					case time.Duration:
						time.Sleep(v)
					}
					synctest.Wait()
				}
				if n := s.count(); n != tc.want {
					t.Errorf("said %d times, want %d", n, tc.want)
				}
				if tc.want > 0 && !strings.Contains(s.notices[0].Body, "The tray icon cannot show: no StatusNotifierWatcher; on GNOME install gnome-shell-extension-appindicator.") {
					t.Errorf("notice %+v", s.notices[0])
				}
				cancel()
				<-done
			})
		})
	}
}

// The status carries the last report until a new child starts, and every
// change of it changes the status.
func TestTrayHostCurrent(t *testing.T) {
	h := newTrayHost(func(context.Context, relaunch.Notice) {})
	if h.current() != nil {
		t.Fatal("a report before any")
	}
	h.report(noWatcher)
	<-h.Changed()
	if r := h.current(); r == nil || *r != noWatcher {
		t.Fatalf("current %+v, want %+v", r, noWatcher)
	}
	h.report(noWatcher) // the same: no change
	select {
	case <-h.Changed():
		t.Error("the same report changed the status")
	default:
	}
	h.childStarted()
	<-h.Changed()
	if h.current() != nil {
		t.Error("a new child's status is the last one's")
	}
}

// TestTrayHostNoticeShown reads the notice back from a notification server
// on a real bus, through the daemon's notifier: busmedic's desktop entry,
// normal urgency, the words of "busmedic status".
func TestTrayHostNoticeShown(t *testing.T) {
	bus := bustest.New(t)
	server := bus.StartNotifications("actions", "body")
	notifier := &relaunch.DesktopNotifier{Address: bus.Address, DesktopEntry: desktopEntry}
	h := newTrayHost(func(ctx context.Context, n relaunch.Notice) {
		showLogged(ctx, notifier, slog.New(slog.DiscardHandler), n)
	})
	h.grace = 0
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.run(ctx)
	}()
	defer func() { cancel(); <-done }()
	h.report(noWatcher)
	n := server.Next()
	if !strings.Contains(n.Body, "The tray icon cannot show: no StatusNotifierWatcher; on GNOME install gnome-shell-extension-appindicator.") ||
		n.Summary != "busmedic: no tray icon" {
		t.Errorf("notification %q: %q", n.Summary, n.Body)
	}
	if e, _ := n.Hints["desktop-entry"].Value().(string); e != desktopEntry {
		t.Errorf("desktop-entry %q", e)
	}
	if u, _ := n.Hints["urgency"].Value().(byte); u != 1 {
		t.Errorf("urgency %d, want normal (1)", u)
	}
	// Said once: run returned after saying it.
	<-done
}

// TestShowTray switches the tray setting while the icon runs: "never"
// stops it, another choice starts it again, Quit in the tray ends it for
// good, and the end of the daemon stops it.
func TestShowTray(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var mu sync.Mutex
		never, runs, running := false, 0, false
		set := func(v bool) {
			mu.Lock()
			never = v
			mu.Unlock()
		}
		state := func() (int, bool) {
			mu.Lock()
			defer mu.Unlock()
			return runs, running
		}
		changed := make(chan struct{}, 1)
		quit := make(chan struct{})
		supervise := func(ctx context.Context) {
			mu.Lock()
			runs, running = runs+1, true
			mu.Unlock()
			defer func() {
				mu.Lock()
				running = false
				mu.Unlock()
			}()
			select {
			case <-ctx.Done():
			case <-quit:
			}
		}
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		result := make(chan bool, 1)
		set(true) // the icon hidden from the start
		go func() {
			result <- showTray(ctx, func() bool { mu.Lock(); defer mu.Unlock(); return never }, changed, supervise)
		}()
		step := func(what string, v bool, wantRuns int, wantRunning bool) {
			t.Helper()
			set(v)
			changed <- struct{}{}
			synctest.Wait()
			if n, r := state(); n != wantRuns || r != wantRunning {
				t.Fatalf("%s: %d runs, running %v; want %d, %v", what, n, r, wantRuns, wantRunning)
			}
		}
		synctest.Wait()
		if n, _ := state(); n != 0 {
			t.Fatalf("tray = never at start: the icon ran %d times", n)
		}
		step("never -> always", false, 1, true)
		step("a change that keeps the icon", false, 1, true)
		step("always -> never", true, 1, false)
		step("never again", true, 1, false)
		step("never -> when-needed", false, 2, true)

		close(quit) // Quit in the tray
		synctest.Wait()
		select {
		case q := <-result:
			if !q {
				t.Error("Quit in the tray: showTray says the daemon was stopped")
			}
		default:
			t.Fatal("showTray did not return after Quit")
		}

		// The daemon stopping while the icon is hidden, and while shown.
		for _, hidden := range []bool{true, false} {
			set(hidden)
			quit = make(chan struct{})
			ctx, cancel := context.WithCancel(t.Context())
			go func() {
				result <- showTray(ctx, func() bool { mu.Lock(); defer mu.Unlock(); return never }, changed, supervise)
			}()
			synctest.Wait()
			cancel()
			synctest.Wait()
			if q := <-result; q {
				t.Errorf("hidden %v: the daemon stopping taken for Quit", hidden)
			}
			if _, r := state(); r {
				t.Errorf("hidden %v: the icon still runs after the daemon stopped", hidden)
			}
		}
	})
}
