package editor

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"busmedic/relaunch/control"
	"busmedic/watcher"
)

// stateText says in a few words what the daemon knows of an app: running
// or not, and how its last recovery ended.
func stateText(a *control.AppStatus) string {
	if a == nil {
		return ""
	}
	var parts []string
	switch {
	case !a.Enabled:
		parts = append(parts, "disabled")
	case a.Running && len(a.PIDs) > 0:
		parts = append(parts, fmt.Sprintf("running (pid %s)", joinInts(a.PIDs)))
	case a.Running:
		parts = append(parts, "running")
	default:
		parts = append(parts, "not running")
	}
	if a.Last != nil {
		parts = append(parts, "last: "+jobText(*a.Last))
	}
	return strings.Join(parts, " · ")
}

// jobText says how one job went, such as "relaunched in 340ms (pid 1234)".
func jobText(j control.Job) string {
	var b strings.Builder
	b.WriteString(string(j.Outcome))
	if j.Took > 0 {
		fmt.Fprintf(&b, " in %s", roundDuration(j.Took))
	}
	if j.PID > 0 {
		fmt.Fprintf(&b, " (pid %d)", j.PID)
	}
	if j.Reason != "" {
		fmt.Fprintf(&b, ": %s", j.Reason)
	}
	return b.String()
}

// roundDuration keeps durations readable: 340ms, 1.2s, 2m3s.
func roundDuration(d time.Duration) time.Duration {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond)
	case d < time.Minute:
		return d.Round(100 * time.Millisecond)
	default:
		return d.Round(time.Second)
	}
}

func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, ", ")
}

// historyEntry is one recovery as the History tab shows it.
type historyEntry struct {
	Title string   // when, which bus, how long it was down
	Jobs  []string // one line per app: outcome and duration
}

// historyText turns recoveries into entries, newest first.
func historyText(recs []control.Recovery) []historyEntry {
	recs = slices.Clone(recs)
	slices.SortStableFunc(recs, func(a, b control.Recovery) int { return b.Started.Compare(a.Started) })
	out := make([]historyEntry, 0, len(recs))
	for _, r := range recs {
		title := fmt.Sprintf("%s  %s bus restarted", r.Started.Local().Format("2006-01-02 15:04:05"), r.Bus)
		if r.Downtime > 0 {
			title += fmt.Sprintf(", down %s", roundDuration(r.Downtime))
		}
		if r.Ended.IsZero() {
			title += " (recovering…)"
		} else {
			title += fmt.Sprintf(", recovered in %s", roundDuration(r.Ended.Sub(r.Started)))
		}
		e := historyEntry{Title: title}
		if r.Decision != "" {
			e.Jobs = append(e.Jobs, r.Decision)
		}
		for _, j := range r.Jobs {
			e.Jobs = append(e.Jobs, fmt.Sprintf("%s: %s (%s)", j.App, jobText(j), j.Action))
		}
		if len(r.Jobs) == 0 && r.Decision == "" {
			e.Jobs = append(e.Jobs, "no app needed help")
		}
		out = append(out, e)
	}
	return out
}

// planText says what recovery would do for the app id if a bus of the
// rule restarted now, from the daemon's dry runs by bus.
func planText(id string, plans map[string][]control.PlannedJob) string {
	var b strings.Builder
	for _, bus := range slices.Sorted(maps.Keys(plans)) {
		for _, j := range plans[bus] {
			if j.App != id {
				continue
			}
			// The same words as "busmedic plan".
			fmt.Fprintf(&b, "If the %s bus restarted now:\n", bus)
			for _, l := range j.Lines() {
				fmt.Fprintf(&b, "• %s\n", l)
			}
		}
	}
	if b.Len() == 0 {
		return "No process of this app is on its bus now, so a restart would not touch it.\n" +
			"(Start the app, or check that the rule's matchers fit it.)"
	}
	return strings.TrimRight(b.String(), "\n")
}

// peerText is one line about a peer for the pickers.
func peerText(bus string, p watcher.Peer) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  pid %d", bus, p.PID)
	if len(p.Argv) > 0 {
		fmt.Fprintf(&b, "  %s", strings.Join(p.Argv, " "))
	} else if p.Exe != "" {
		fmt.Fprintf(&b, "  %s", p.Exe)
	}
	if len(p.Names) > 0 {
		fmt.Fprintf(&b, "  [%s]", strings.Join(p.Names, ", "))
	}
	return b.String()
}

// peerMatches reports whether a peer fits the picker's search: every word
// of the query must appear in its pid, command or names.
func peerMatches(bus string, p watcher.Peer, query string) bool {
	hay := strings.ToLower(peerText(bus, p) + " " + p.Exe)
	for _, w := range strings.Fields(strings.ToLower(query)) {
		if !strings.Contains(hay, w) {
			return false
		}
	}
	return true
}
