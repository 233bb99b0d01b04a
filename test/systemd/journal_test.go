package systemd

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"busmedic/journallog"
	"busmedic/relaunch/control"
	"busmedic/test/systemdtest"
)

// TestJournalFields: busmedic in busmedic.service logs a bus restart and
// each app it recovered with their MESSAGE_IDs and fields, read back as
// the README says to: journalctl --user -u busmedic MESSAGE_ID=...
func TestJournalFields(t *testing.T) {
	echo := sessionApps[0]
	s := startSession(t, systemdtest.Daemon, []app{echo}, sessionOptions{grace: "1s"})
	st, _ := s.status()
	oldID := bus(st, "session").ID
	started := time.Now()
	s.m.User.Run(systemdtest.BusmedicPath, "restart-bus")
	s.waitStatus(30*time.Second, "the app back after the restart", func(st control.Status) bool {
		b := bus(st, "session")
		return b.Up && b.ID != oldID && st.LastRecovery != nil && st.LastRecovery.ID == b.ID &&
			!st.LastRecovery.Ended.IsZero() && s.allRunning(st)
	})

	// The recovery's last record, followed as journald makes it readable
	// (journalctl --follow): the records before it are readable then too.
	s.m.User.WaitJournal("busmedic.service", `recovery ended`, started, 10*time.Second)
	// query is the README's line, as the user, in JSON.
	query := func(event string) []systemdtest.Entry {
		id, _ := journallog.MessageID(event)
		out := s.m.User.Run("journalctl", "--user", "-u", "busmedic", "--no-pager", "-o", "json",
			"--since", fmt.Sprintf("@%d", started.Unix()-1), "MESSAGE_ID="+id)
		return s.m.User.ParseJournal(out)
	}
	restarted := query(journallog.BusRestarted)
	if len(restarted) != 1 {
		t.Fatalf("%d records of a bus restart, want 1: %v\nbusmedic's journal:\n%s", len(restarted), restarted,
			s.m.User.Run("journalctl", "--user", "-u", "busmedic", "--no-pager", "-o", "verbose", "-n", "20"))
	}
	e := restarted[0]
	for field, want := range map[string]string{
		"BUS": "session", "EVENT": journallog.BusRestarted, "OLD_ID": oldID,
		"PRIORITY": "6", "SYSLOG_IDENTIFIER": "busmedic",
	} {
		if got := e.Fields[field]; got != want {
			t.Errorf("bus restart: %s=%q, want %q (all: %v)", field, got, want, e.Fields)
		}
	}
	if e.Fields["ID"] == "" || e.Fields["DOWNTIME"] == "" {
		t.Errorf("bus restart without ID or DOWNTIME: %v", e.Fields)
	}

	recovered := query(journallog.AppRecovered)
	if len(recovered) != 1 {
		t.Fatalf("%d records of an app recovered, want 1: %v", len(recovered), recovered)
	}
	e = recovered[0]
	if e.Fields["APP"] != strings.TrimSuffix(echo.unit, ".service") || e.Fields["BUS"] != "session" || e.Fields["OUTCOME"] == "" ||
		!control.Outcome(e.Fields["OUTCOME"]).Recovered() {
		t.Errorf("app recovered: APP, BUS, OUTCOME wrong: %v", e.Fields)
	}
	if e.Unit != "busmedic.service" {
		t.Errorf("app recovered logged by unit %q, want busmedic.service", e.Unit)
	}
	if failed := query(journallog.RecoveryFailed); len(failed) > 0 {
		t.Errorf("recovery failed logged for a recovered app: %v", failed)
	}
}
