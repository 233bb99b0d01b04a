package control

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Text says how the app is kept, in one line for people, as "busmedic
// status" lists it after "kept: ": "dunst (pid 1234), through 3
// restarts", or "dunst (pid 1234), since 12:03:01" before its first
// restart; then the names it lost at the last restart, if any.
func (a KeptApp) Text() string {
	s := fmt.Sprintf("%s (pid %d), ", a.Command, a.PID)
	if a.Restarts > 0 {
		s += "through " + Count(a.Restarts, "restart", "restarts")
	} else {
		s += "since " + clock(a.Since)
	}
	if len(a.Lost) > 0 {
		s += "; lost " + strings.Join(a.Lost, ", ") + " to another process at the last restart"
	}
	return s
}

// Brief is the app as the tray's menu lists it: "dunst — kept through 3
// restarts".
func (a KeptApp) Brief() string {
	switch {
	case len(a.Lost) > 0:
		return a.Command + " — kept, lost " + strings.Join(a.Lost, ", ")
	case a.Restarts > 0:
		return a.Command + " — kept through " + Count(a.Restarts, "restart", "restarts")
	}
	return a.Command + " — kept"
}

// Text says what the keeper did for one app when its bus came back, as
// "busmedic watch" prints it after the bus's name: "kept dunst (pid
// 1234): 3 matches, 1 name replayed in 4 ms", "kept dunst (pid 1234), but
// lost org.x.Y: ...", or "could not keep dunst (pid 1234): ERROR".
func (r Replay) Text() string {
	who := fmt.Sprintf("%s (pid %d)", r.Command, r.PID)
	if r.Error != "" {
		return "could not keep " + who + ": " + r.Error
	}
	var parts []string
	if r.Matches > 0 {
		parts = append(parts, Count(r.Matches, "match", "matches"))
	}
	if n := len(r.Names) + len(r.Lost); n > 0 {
		parts = append(parts, Count(n, "name", "names"))
	}
	if r.Monitor {
		parts = append(parts, "the monitor")
	}
	did := "nothing to replay, reconnected"
	if len(parts) > 0 {
		did = strings.Join(parts, ", ") + " replayed"
	}
	s := "kept " + who
	if len(r.Lost) > 0 {
		s += ", but lost " + strings.Join(r.Lost, ", ")
	}
	return s + ": " + did + " in " + Millis(r.Took)
}

// Count is n with the word for one or for many: "1 name", "3 matches".
func Count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// Millis writes a short time as people read it: "4 ms", "under 1 ms",
// "1.2 s".
func Millis(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return "under 1 ms"
	case d < 10*time.Second:
		if d < time.Second {
			return strconv.FormatInt(d.Round(time.Millisecond).Milliseconds(), 10) + " ms"
		}
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s"
	}
	return d.Round(time.Second).String()
}

// newReplays returns the replays in apps (their LastReplay) that are not
// in seen, and records them there: FollowReplays sends each replay once,
// as the daemon's status brings it. A replay is known by its process, bus
// instance and time.
func newReplays(apps []KeptApp, seen map[string]bool) []Replay {
	var out []Replay
	for _, a := range apps {
		r := a.LastReplay
		if r == nil {
			continue
		}
		key := fmt.Sprintf("%d %s %s", r.PID, r.BusID, r.Time.Format(time.RFC3339Nano))
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, *r)
	}
	return out
}
