package control

import (
	"encoding/json"
	"time"

	"busmedic/appdb"
	"busmedic/watcher"
)

// Outcome is how one recovery job ended.
type Outcome string

// The outcomes of a job. Pending and Running are the states of a job not
// yet ended.
const (
	Pending     Outcome = "pending"
	Running     Outcome = "running"
	Reconnected Outcome = "reconnected" // came back by itself: nothing done
	Relaunched  Outcome = "relaunched"
	Signalled   Outcome = "signalled"
	Hooked      Outcome = "hooked"
	Notified    Outcome = "notified"
	Failed      Outcome = "failed"  // Reason says why, in words for people
	Skipped     Outcome = "skipped" // limit reached, paused, disabled, session ending
	Cancelled   Outcome = "cancelled"
	Stopped     Outcome = "stopped" // a deaf old copy of an on-demand service (action "stop")
)

// Ended reports whether the outcome is final.
func (o Outcome) Ended() bool { return o != Pending && o != Running }

// Status is what the daemon knows now; the control socket serves it to the
// tray, the editor and the command line.
type Status struct {
	// Time is when the daemon made this status.
	Time time.Time `json:"time"`
	// Paused: automatic recovery is paused (busmedic pause).
	Paused bool `json:"paused"`
	// Buses are the session and the system bus.
	Buses []BusStatus `json:"buses"`
	// Apps has one entry per rule, in rule order.
	Apps []AppStatus `json:"apps"`
	// Casualties are peers that fell off, did not come back and match no rule.
	Casualties []Casualty `json:"casualties,omitempty"`
	// LastRecovery is the most recent recovery, running or ended; nil if none.
	LastRecovery *Recovery `json:"last_recovery,omitempty"`
	// RulesError is the problem with the rules file on disk, if any; the
	// last good rules stay in force meanwhile.
	RulesError string `json:"rules_error,omitempty"`
	// SessionRestart says how busmedic would restart the session bus
	// ("systemd user unit dbus.service"), and SessionRestartRefusal why it
	// cannot: who started the bus. SessionRestartRefused is its Reason
	// ("the session bus (pid 1234) was started by dbus-launch"), for the
	// scripts that read it.
	SessionRestart        string          `json:"session_restart,omitempty"`
	SessionRestartRefused string          `json:"session_restart_refused,omitempty"`
	SessionRestartRefusal *RestartRefusal `json:"session_restart_refusal,omitempty"`
	// Tray is the tray icon: how it is to show, and what the tray child
	// found of the panel that shows it; nil when busmedic runs without
	// a tray.
	Tray *TrayStatus `json:"tray,omitempty"`
	// Kept are the apps the keeper holds through bus restarts
	// ("busmedic keep", rules with action "keep").
	Kept []KeptApp `json:"kept,omitempty"`
}

// App returns the app of the rule id, if there is one.
func (s Status) App(id string) (AppStatus, bool) {
	for _, a := range s.Apps {
		if a.ID == id {
			return a, true
		}
	}
	return AppStatus{}, false
}

// Casualty returns the casualty id, if there is one.
func (s Status) Casualty(id string) (Casualty, bool) {
	for _, c := range s.Casualties {
		if c.ID == id {
			return c, true
		}
	}
	return Casualty{}, false
}

// MarshalJSON writes the status with [] for a list that is empty, never
// null: "busmedic status --json" with no rules says "apps": [].
func (s Status) MarshalJSON() ([]byte, error) {
	type plain Status // without this method
	s.Buses, s.Apps = orEmpty(s.Buses), orEmpty(s.Apps)
	return json.Marshal(plain(s))
}

// MarshalJSON writes the recovery with "jobs": [] when it has none.
func (r Recovery) MarshalJSON() ([]byte, error) {
	type plain Recovery
	r.Jobs = orEmpty(r.Jobs)
	return json.Marshal(plain(r))
}

// MarshalJSON writes the planned job with "peers": [] when it has none.
func (j PlannedJob) MarshalJSON() ([]byte, error) {
	type plain PlannedJob
	j.Peers = orEmpty(j.Peers)
	return json.Marshal(plain(j))
}

// orEmpty is s, or an empty slice for nil, which JSON writes as [].
func orEmpty[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// BusStatus is one bus as the watcher last saw it.
type BusStatus struct {
	Name    string    `json:"name"`    // "session", "system"
	Address string    `json:"address"` // the bus address busmedic watches
	Up      bool      `json:"up"`
	ID      string    `json:"id,omitempty"`     // the bus's id while up; a new one after each restart
	Since   time.Time `json:"since"`            // when it came up or went down
	Reason  string    `json:"reason,omitempty"` // why it is down
	Peers   int       `json:"peers"`            // connections on it
	// Outdated says what of the running bus daemon was replaced on disk
	// since it started (a dbus update): the update takes effect only when
	// the bus restarts.
	Outdated string `json:"outdated,omitempty"`
}

// AppStatus is one rule and what busmedic last did for its app.
type AppStatus struct {
	// ID, Name, Icon, Bus, Action and Enabled are the rule's (Name is its
	// id when the rule has no name).
	ID      string `json:"id"`
	Name    string `json:"name"`
	Icon    string `json:"icon,omitempty"`
	Bus     string `json:"bus"`
	Action  string `json:"action"`
	Enabled bool   `json:"enabled"`
	// Running reports whether a process of the app is on its bus now, and
	// PIDs which.
	Running bool  `json:"running"`
	PIDs    []int `json:"pids,omitempty"`
	// Last is the app's most recent job, if any.
	Last *Job `json:"last,omitempty"`
}

// Buses are the buses whose restart concerns the app: "session",
// "system", or both for a rule on both.
func (a AppStatus) Buses() []string {
	switch a.Bus {
	case "system":
		return []string{"system"}
	case "both":
		return []string{"session", "system"}
	}
	return []string{"session"}
}

// Casualty is a peer that fell off a bus, did not come back within the
// grace time and matches no rule: the user may relaunch it once or make a
// rule of it.
type Casualty struct {
	// ID names the casualty in relaunch-now requests; it is stable for the
	// casualty's lifetime.
	ID  string `json:"id"`
	Bus string `json:"bus"`
	// Peer is its connection as last seen on the bus.
	Peer watcher.Peer `json:"peer"`
	// At is when it was counted as fallen off.
	At time.Time `json:"at"`
}

// Recovery is what busmedic did after one restart of one bus.
type Recovery struct {
	Bus string `json:"bus"`
	// OldID and ID are the bus's ids before and after the restart.
	OldID    string        `json:"old_id"`
	ID       string        `json:"id"`
	Downtime time.Duration `json:"downtime_ns"`
	// Started is when the bus was back and recovery began; Ended, absent
	// while it runs, when its last job ended.
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended,omitzero"`
	// Decision says why recovery did or did not go ahead ("session ending:
	// no recovery"), when something other than the plain case drove it.
	Decision string `json:"decision,omitempty"`
	// Jobs has one job per app recovered, in rule order.
	//
	// The deaf old copies of on-demand services stopped after the restart
	// (when the bus started their new copies, which may be long after the
	// recovery ended) are recorded in a Recovery of their own, with the
	// restart's ids, Downtime and Started, a Decision that says so, and one
	// job per copy with action "stop".
	Jobs []Job `json:"jobs"`
}

// Job is the recovery of one app after one restart.
type Job struct {
	// App is the rule id, or the casualty id; for the stop of a deaf old
	// copy of an on-demand service, "deaf:PROGRAM:PID"; for an app the
	// keeper kept without a rule ("busmedic keep" by hand),
	// "kept:COMMAND:PID".
	App     string  `json:"app"`
	Bus     string  `json:"bus"`    // "session", "system"
	Action  string  `json:"action"` // relaunch, signal, hook, notify, ignore, keep, or stop (a deaf old copy)
	Outcome Outcome `json:"outcome"`
	// Reason says why a job failed or was skipped, or what else is worth
	// knowing, in words for people.
	Reason  string        `json:"reason,omitempty"`
	PID     int           `json:"pid,omitempty"` // of the process started or signalled
	Started time.Time     `json:"started"`
	Took    time.Duration `json:"took_ns,omitempty"` // from Started to the outcome
}

// PlannedJob is one app to recover after a restart, as planned from the
// Down snapshot and the rules.
type PlannedJob struct {
	// App is the rule id.
	App  string     `json:"app"`
	Bus  string     `json:"bus"`
	Rule appdb.Rule `json:"rule"`
	// Peers are the app's connections in the snapshot (usually one).
	Peers []watcher.Peer `json:"peers"`
	// Helpers are other connections of the snapshot whose processes the
	// app started (a panel's plugins): they are the app's, not casualties.
	// A relaunch leaves them alone: one that lives on may be a window the
	// user still works in, and the app's new copy starts its own.
	Helpers []watcher.Peer `json:"helpers,omitempty"`
	// Command and Dir are what a relaunch would start: the rule's exec and
	// workdir, or else the command line and directory the process had.
	Command []string `json:"command,omitempty"`
	Dir     string   `json:"dir,omitempty"`
	Shell   bool     `json:"shell,omitempty"`
	// Unit is the systemd user service a relaunch starts (or restarts)
	// through the user manager instead of running Command: the rule's
	// unit, else the one the app's process ran in. Never busmedic's own.
	Unit string `json:"unit,omitempty"`
	// Skip, when set, is why the job would be skipped now.
	Skip string `json:"skip,omitempty"`
	// Kept: the app is kept by busmedic's keeper (its Peers are its own
	// processes, not the keeper the bus shows): after a restart its job
	// waits for the keeper's replay, whatever its rule's action, and acts
	// only if the app has died.
	Kept bool `json:"kept,omitempty"`
}
