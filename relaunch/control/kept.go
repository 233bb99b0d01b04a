package control

import (
	"path/filepath"
	"time"
)

// Kept is the outcome of a job whose app the keeper held through the
// restart: same process, same connection as the app sees it, nothing
// relaunched. Its Reason says what was replayed and what was lost.
const Kept Outcome = "kept"

// OpKept is the keeper telling the daemon what it keeps on one bus
// (Request.Kept). The keeper sends it whenever that changes and after every
// replay, and again in full whenever it reconnects to the daemon, so a
// daemon that restarted learns it all.
const OpKept = "kept"

// KeptReport is the keeper's account of one bus.
type KeptReport struct {
	// Bus is "session" (the keeper keeps the session bus only).
	Bus string `json:"bus"`
	// Keeper is the keeper process's pid: the pid the bus reports for
	// every kept connection (GetConnectionUnixProcessID).
	Keeper int `json:"keeper"`
	// Up says whether the keeper is connected to the bus now.
	Up bool `json:"up"`
	// Apps are the apps kept now, in the order they first connected.
	Apps []KeptApp `json:"apps"`
	// Replays, when set, are what the keeper did for each app when the
	// bus came back: the report that follows a restart carries them, once.
	Replays []Replay `json:"replays,omitempty"`
}

// KeptApp is one app whose connections to a bus the keeper holds.
type KeptApp struct {
	// PID and StartTime (clock ticks since boot, as in /proc/PID/stat)
	// name the app's process: the peer of its connections to the keeper.
	PID       int    `json:"pid"`
	StartTime uint64 `json:"start_time,omitempty"`
	// Command is the process's name (its comm), for people.
	Command string `json:"command"`
	Bus     string `json:"bus"`
	// Since is when its first connection arrived.
	Since time.Time `json:"since"`
	// Connections is how many connections it has open through the keeper.
	Connections int `json:"connections"`
	// UniqueNames are its connections' unique names as the app knows them:
	// the names of the bus instance it first connected to, kept across
	// restarts.
	UniqueNames []string `json:"unique_names"`
	// Names are the well-known names it owns now.
	Names []string `json:"names,omitempty"`
	// Restarts counts the bus restarts it has been kept through.
	Restarts int `json:"restarts"`
	// Lost are well-known names it owned before the last restart and did
	// not get back (someone else took them in the gap); the app was told
	// with NameLost.
	Lost []string `json:"lost,omitempty"`
	// LastReplay is the replay after the last restart, if any.
	LastReplay *Replay `json:"last_replay,omitempty"`
}

// Replay is what the keeper did for one app when its bus came back.
type Replay struct {
	PID     int    `json:"pid"`
	Command string `json:"command"`
	Bus     string `json:"bus"`
	// BusID is the id of the bus instance replayed onto.
	BusID string    `json:"bus_id"`
	Time  time.Time `json:"time"`
	// Took is from the keeper's reconnect to the end of the replay.
	Took time.Duration `json:"took_ns"`
	// Connections, Matches and Names count what was replayed: the
	// connections reopened, AddMatch calls (with their multiplicity) and
	// the well-known names asked for again (Names lists those got back).
	Connections int      `json:"connections"`
	Matches     int      `json:"matches"`
	Names       []string `json:"names,omitempty"`
	// Lost are the names the bus gave to someone else.
	Lost []string `json:"lost,omitempty"`
	// Monitor says a BecomeMonitor was replayed.
	Monitor bool `json:"monitor,omitempty"`
	// Error, if set, is why the replay failed; the app's connection was
	// then closed, as the bus would have done.
	Error string `json:"error,omitempty"`
}

// KeepPath returns the socket kept apps of bus connect to instead of the
// bus: $XDG_RUNTIME_DIR/busmedic/keep-BUS.sock, beside the control socket.
func KeepPath(bus string) string {
	return filepath.Join(filepath.Dir(DefaultPath()), "keep-"+bus+".sock")
}
