package relaunch

import (
	"log/slog"
	"testing"

	"busmedic/journallog"
	"busmedic/relaunch/control"
)

// TestJobEvent: the journal's MESSAGE_ID of a job's record is "app
// recovered" for every outcome that counts as recovered, "recovery
// failed", a warning, for a failure, and none for the rest.
func TestJobEvent(t *testing.T) {
	for _, tc := range []struct {
		outcome control.Outcome
		level   slog.Level
		event   string
	}{
		{control.Reconnected, slog.LevelInfo, journallog.AppRecovered},
		{control.Relaunched, slog.LevelInfo, journallog.AppRecovered},
		{control.Signalled, slog.LevelInfo, journallog.AppRecovered},
		{control.Hooked, slog.LevelInfo, journallog.AppRecovered},
		{control.Notified, slog.LevelInfo, journallog.AppRecovered},
		{control.Failed, slog.LevelWarn, journallog.RecoveryFailed},
		{control.Skipped, slog.LevelInfo, ""},
		{control.Cancelled, slog.LevelInfo, ""},
	} {
		t.Run(string(tc.outcome), func(t *testing.T) {
			level, attr := jobEvent(tc.outcome)
			if level != tc.level || tc.event == "" && !attr.Equal(slog.Attr{}) || tc.event != "" && (attr.Key != journallog.EventKey || attr.Value.String() != tc.event) {
				t.Errorf("jobEvent(%s) = %v, %v; want %v, %s=%s", tc.outcome, level, attr, tc.level, journallog.EventKey, tc.event)
			}
		})
	}
}
