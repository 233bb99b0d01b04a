package journallog

// EventKey is the key of the attribute that names what a record tells, in a
// stable word ("event", "app-recovered"): the packages that log keep to
// slog and to words, and this package turns the word into the record's
// MESSAGE_ID in the journal. A text log shows it as event=app-recovered.
const EventKey = "event"

// The events busmedic's records name, each with its MESSAGE_ID in
// Messages. The README lists them with the journalctl lines to count them.
const (
	// BusRestarted: a bus came back with a new id (fields BUS, ID, OLD_ID,
	// DOWNTIME).
	BusRestarted = "bus-restarted"
	// AppRecovered: after a bus restart, an app is back on its bus (fields
	// APP, BUS, OUTCOME: reconnected, relaunched, signalled, hooked or
	// notified; PID, TOOK).
	AppRecovered = "app-recovered"
	// RecoveryFailed: after a bus restart, an app did not come back
	// (fields APP, BUS, OUTCOME=failed, REASON).
	RecoveryFailed = "recovery-failed"
	// UpdateWaits: a bus daemon was updated and waits for a restart of
	// its bus (fields BUS, RESTART_AFTER_UPDATE, WHY).
	UpdateWaits = "update-waits"
)

// MessageID is the MESSAGE_ID of event, a 128-bit id made once
// (journalctl --new-id128) and never to change, so that a query or a
// fleet's log collector keeps finding the records across versions; ok is
// false for a word that is no event of Events.
func MessageID(event string) (id string, ok bool) {
	switch event {
	case BusRestarted:
		return "05a395e632dc40b19e918c510529b444", true
	case AppRecovered:
		return "0d098df4e9044dbcbbb72c291d740160", true
	case RecoveryFailed:
		return "978516faf52d4e21834a4854600efa0f", true
	case UpdateWaits:
		return "fe8f46a2346247239fdb7dfb861fd7d8", true
	}
	return "", false
}

// Events lists the events that have a MESSAGE_ID.
func Events() []string { return []string{BusRestarted, AppRecovered, RecoveryFailed, UpdateWaits} }
