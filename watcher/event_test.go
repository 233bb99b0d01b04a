package watcher_test

import (
	"testing"
	"time"

	"busmedic/watcher"
)

// TestEventString: a Down event counts who was connected, in the singular
// for one.
func TestEventString(t *testing.T) {
	at := time.Date(2025, 3, 4, 12, 3, 0, 0, time.Local)
	dunst := watcher.Peer{UniqueName: ":1.4", PID: 42, Argv: []string{"dunst"}, Names: []string{"org.freedesktop.Notifications"}}
	panel := watcher.Peer{UniqueName: ":1.5", PID: 43, Argv: []string{"xfce4-panel"}}
	for _, tc := range []struct {
		e    watcher.Event
		want string
	}{
		{watcher.Event{Time: at, Bus: "session", Kind: watcher.Down, Reason: "connection reset"},
			"12:03:00.000 session down: connection reset"},
		{watcher.Event{Time: at, Bus: "session", Kind: watcher.Down, Reason: "connection reset", Peers: []watcher.Peer{dunst}},
			"12:03:00.000 session down: connection reset; 1 peer was connected: dunst[42] org.freedesktop.Notifications"},
		{watcher.Event{Time: at, Bus: "session", Kind: watcher.Down, Reason: "connection reset", Peers: []watcher.Peer{dunst, panel}},
			"12:03:00.000 session down: connection reset; 2 peers were connected: dunst[42] org.freedesktop.Notifications, xfce4-panel[43]"},
	} {
		if got := tc.e.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}
