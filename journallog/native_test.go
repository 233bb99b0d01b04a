package journallog

import (
	"bytes"
	"errors"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
)

// sent is one record as the journal got it.
type sent struct {
	msg    string
	pri    journal.Priority
	fields map[string]string
}

func capture(out *[]sent, fail bool) sendFunc {
	return func(msg string, pri journal.Priority, fields map[string]string) error {
		if fail {
			return errors.New("no journal")
		}
		*out = append(*out, sent{msg, pri, maps.Clone(fields)})
		return nil
	}
}

// TestJournalHandlerFields: MESSAGE is the text line without the level
// and time; PRIORITY as on the stream; every attribute a field; an event
// its MESSAGE_ID.
func TestJournalHandlerFields(t *testing.T) {
	var got []sent
	var stream bytes.Buffer
	log := slog.New(newNative(&stream, "busmedic", nil, capture(&got, false)))
	log.With("bus", "session").Info("bus restarted", EventKey, BusRestarted, "old_id", "a", "downtime", 1500*time.Millisecond)
	log.Warn("job ended", EventKey, AppRecovered, "app", "dunst", "outcome", "relaunched", "pid", 42)
	log.WithGroup("rule").Error("bad", "id", "x", "message", "m", slog.Group("g", "new-pid", 3))
	log.Debug("not shown")
	want := []sent{{
		msg: `msg="bus restarted" bus=session event=bus-restarted old_id=a downtime=1.5s`, pri: journal.PriInfo,
		fields: map[string]string{"SYSLOG_IDENTIFIER": "busmedic", "BUS": "session", "EVENT": "bus-restarted",
			"MESSAGE_ID": "05a395e632dc40b19e918c510529b444", "OLD_ID": "a", "DOWNTIME": "1.5s"},
	}, {
		msg: `msg="job ended" event=app-recovered app=dunst outcome=relaunched pid=42`, pri: journal.PriWarning,
		fields: map[string]string{"SYSLOG_IDENTIFIER": "busmedic", "EVENT": "app-recovered",
			"MESSAGE_ID": "0d098df4e9044dbcbbb72c291d740160", "APP": "dunst", "OUTCOME": "relaunched", "PID": "42"},
	}, {
		msg: `msg=bad rule.id=x rule.message=m rule.g.new-pid=3`, pri: journal.PriErr,
		fields: map[string]string{"SYSLOG_IDENTIFIER": "busmedic", "RULE_ID": "x", "RULE_MESSAGE": "m", "RULE_G_NEW_PID": "3"},
	}}
	if len(got) != len(want) {
		t.Fatalf("sent %d records, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].msg != want[i].msg || got[i].pri != want[i].pri || !maps.Equal(got[i].fields, want[i].fields) {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, got[i], want[i])
		}
	}
	if stream.Len() > 0 {
		t.Errorf("the stream got %q while the journal took every record", stream.String())
	}
}

// TestJournalHandlerFallback: a record the journal does not take goes to
// the stream, with its priority prefix and its attributes.
func TestJournalHandlerFallback(t *testing.T) {
	var got []sent
	var stream bytes.Buffer
	log := slog.New(newNative(&stream, "busmedic", nil, capture(&got, true)))
	log.With("bus", "system").WithGroup("g").Warn("lost", "k", "v")
	if want := "<4>level=WARN msg=lost bus=system g.k=v\n"; stream.String() != want {
		t.Errorf("stream %q, want %q", stream.String(), want)
	}
}

func TestFieldName(t *testing.T) {
	for _, tc := range []struct {
		path []string
		want string
	}{
		{[]string{"app"}, "APP"},
		{[]string{"new_pid"}, "NEW_PID"},
		{[]string{"restart_after_update"}, "RESTART_AFTER_UPDATE"},
		{[]string{"rule", "id"}, "RULE_ID"},
		{[]string{"a-b.c"}, "A_B_C"},
		{[]string{"message"}, "BUSMEDIC_MESSAGE"},
		{[]string{"priority"}, "BUSMEDIC_PRIORITY"},
		{[]string{"_pid"}, "BUSMEDIC__PID"},
		{[]string{"1x"}, "BUSMEDIC_1X"},
		{[]string{""}, ""},
	} {
		if got := FieldName(tc.path); got != tc.want {
			t.Errorf("FieldName(%q) = %q, want %q", tc.path, got, tc.want)
		}
	}
	long := FieldName([]string{string(bytes.Repeat([]byte("a"), 100))})
	if len(long) != 64 {
		t.Errorf("a 100-character key gives a %d-character field", len(long))
	}
}

// TestMessageIDs: every event has an id of 32 lower-case hex digits, as
// journalctl --new-id128 makes them, and no two share one.
func TestMessageIDs(t *testing.T) {
	hex := regexp.MustCompile(`^[0-9a-f]{32}$`)
	var ids []string
	for _, ev := range Events() {
		id, ok := MessageID(ev)
		if !ok || !hex.MatchString(id) {
			t.Errorf("event %s: MESSAGE_ID %q", ev, id)
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if len(slices.Compact(ids)) != len(Events()) {
		t.Errorf("two events share a MESSAGE_ID: %v", ids)
	}
	if _, ok := MessageID("job-ended"); ok {
		t.Error("a word that is no event has a MESSAGE_ID")
	}
}
