package control_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"busmedic/relaunch/control"
)

// textStatuses are statuses that between them take every branch of
// Status.WriteText, their times in the local time zone (which WriteText
// shows), so that the golden files hold in any zone.
func textStatuses() map[string]control.Status {
	full, _ := sample(time.Local)
	at := time.Date(2025, 3, 4, 12, 3, 0, 0, time.Local)
	return map[string]control.Status{
		"status.txt": full,
		"status-paused.txt": {
			Paused: true,
			Buses:  []control.BusStatus{{Name: "session", Up: true, Since: at, Peers: 1}, {Name: "system", Reason: "no socket"}},
			Apps: []control.AppStatus{
				{ID: "nm-applet", Action: "relaunch", Enabled: true, Last: &control.Job{Outcome: control.Skipped,
					Started: at.Add(time.Second), Reason: "restart limit reached (5 in 1m0s)"}},
				{ID: "blueman", Action: "notify", Enabled: true, Running: true},
			},
		},
		"status-empty.txt": {},
	}
}

// The text of "busmedic status" and "busmedic history" is for people, but
// people compare it over time and scripts grep it: these golden files pin
// it.
func TestWriteText(t *testing.T) {
	for name, st := range textStatuses() {
		t.Run(name, func(t *testing.T) {
			var b bytes.Buffer
			if err := st.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			golden(t, name, b.Bytes())
		})
	}
	t.Run("history.txt", func(t *testing.T) {
		_, history := sample(time.Local)
		var b bytes.Buffer
		if err := control.WriteHistoryText(&b, history); err != nil {
			t.Fatal(err)
		}
		golden(t, "history.txt", b.Bytes())
		b.Reset()
		if err := control.WriteHistoryText(&b, nil); err != nil || b.String() != "No bus restarts recorded yet.\n" {
			t.Errorf("no history: %q, %v", b.String(), err)
		}
	})
}

type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestWriteTextError checks that a failed write is reported.
func TestWriteTextError(t *testing.T) {
	st, history := sample(time.Local)
	if err := st.WriteText(failingWriter{}); err == nil {
		t.Error("Status.WriteText to a failing writer: no error")
	}
	if err := history[0].WriteText(failingWriter{}); err == nil {
		t.Error("Recovery.WriteText to a failing writer: no error")
	}
}

func TestOutcomeRecovered(t *testing.T) {
	for _, tc := range []struct {
		o    control.Outcome
		want bool
	}{
		{control.Pending, false},
		{control.Running, false},
		{control.Reconnected, true},
		{control.Relaunched, true},
		{control.Signalled, true},
		{control.Hooked, true},
		{control.Notified, true},
		{control.Stopped, false},
		{control.Failed, false},
		{control.Skipped, false},
		{control.Cancelled, false},
	} {
		if got := tc.o.Recovered(); got != tc.want {
			t.Errorf("%s.Recovered() = %v, want %v", tc.o, got, tc.want)
		}
	}
}
