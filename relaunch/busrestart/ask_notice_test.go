package busrestart_test

import (
	"slices"
	"strings"
	"testing"

	"busmedic/relaunch/busrestart"
	"busmedic/watcher/bustest"
)

// TestPolicyAskNotification reads the update question back from a
// notification server on a real bus: with the "actions" capability it has
// the Restart now button, of normal urgency; without, the body tells the
// command, and the question, which nobody can answer by a click, ends as
// declined rather than waiting.
func TestPolicyAskNotification(t *testing.T) {
	t.Run("with actions", func(t *testing.T) {
		session := bustest.New(t)
		srv := session.StartNotifications("actions", "body")
		r := newRestarts()
		events, decided, _, _ := askOnBus(t, session, r)
		events <- outdated("system")
		got := srv.Next()
		if want := []string{busrestart.ActionRestart, "Restart now"}; !slices.Equal(got.Actions, want) {
			t.Errorf("actions %q, want %q", got.Actions, want)
		}
		if strings.Contains(got.Body, "busmedic restart-bus") {
			t.Errorf("body tells the command beside the button: %q", got.Body)
		}
		if u := got.Hints["urgency"].Value(); u != byte(1) {
			t.Errorf("urgency %v, want 1 (normal)", u)
		}
		srv.Invoke(got.ID, busrestart.ActionRestart)
		r.expect(t, "ordered system", "restart system")
		expectDecided(t, decided, "system restarted")
	})
	t.Run("without actions", func(t *testing.T) {
		session := bustest.New(t)
		srv := session.StartNotifications("body")
		r := newRestarts()
		events, decided, _, _ := askOnBus(t, session, r)
		events <- outdated("session")
		got := srv.Next()
		if len(got.Actions) != 0 || !strings.HasSuffix(got.Body, "\nRestart now: run busmedic restart-bus session") {
			t.Errorf("actions %q, body %q; want none, and the command in the body", got.Actions, got.Body)
		}
		expectDecided(t, decided, "session declined")
		r.none(t)
	})
}
