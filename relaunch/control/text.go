package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText writes the status for people, as "busmedic status" prints it:
// each bus, the pause, the rules file's problem, the apps with their last
// job, the apps kept through restarts, and the casualties. Times are shown as the local time of day.
func (s Status) WriteText(w io.Writer) error {
	var b bytes.Buffer
	for _, bus := range s.Buses {
		state := "up"
		if !bus.Up {
			state = "DOWN"
		}
		fmt.Fprintf(&b, "%s bus: %s since %s", bus.Name, state, clock(bus.Since))
		if bus.Up {
			if bus.Peers == 1 {
				b.WriteString(" (1 peer)")
			} else {
				fmt.Fprintf(&b, " (%d peers)", bus.Peers)
			}
		} else if bus.Reason != "" {
			fmt.Fprintf(&b, ": %s", bus.Reason)
		}
		b.WriteByte('\n')
		if bus.Outdated != "" {
			fmt.Fprintf(&b, "  update installed: restart the %s bus to finish it (busmedic restart-bus %s)\n  %s\n", bus.Name, bus.Name, bus.Outdated)
		}
	}
	if p := s.Tray.Problem(); p != "" {
		fmt.Fprintf(&b, "%s%s.\n", strings.ToUpper(p[:1]), p[1:])
	}
	if s.Tray != nil && s.Tray.Show == TrayNever {
		b.WriteString("No tray icon: tray = \"never\" in the settings.\n")
	}
	if s.Paused {
		b.WriteString("Recovery is paused (busmedic resume).\n")
	}
	if s.RulesError != "" {
		fmt.Fprintf(&b, "Rules file has errors; the last good rules stay in force:\n%s\n", s.RulesError)
	}
	if len(s.Apps) == 0 {
		b.WriteString("No apps registered (see busmedic rules).\n")
	} else {
		b.WriteString("\nApps:\n")
		tw := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
		for _, a := range s.Apps {
			running := "not running"
			if a.Running {
				running = "running"
			}
			if !a.Enabled {
				running = "disabled"
			}
			last := ""
			if a.Last != nil {
				last = "last: " + a.Last.Text()
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", a.ID, a.Action, running, last)
		}
		tw.Flush()
	}
	if len(s.Kept) > 0 {
		b.WriteString("\nKept through bus restarts (busmedic keep):\n")
		for _, a := range s.Kept {
			fmt.Fprintf(&b, "  kept: %s\n", a.Text())
		}
	}
	if len(s.Casualties) > 0 {
		b.WriteString("\nFell off the bus (no rule; busmedic relaunch ID):\n")
		for _, c := range s.Casualties {
			fmt.Fprintf(&b, "  %s  %s bus  %s  %s\n", c.ID, c.Bus, c.Peer, strings.Join(c.Peer.Argv, " "))
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// WriteText writes the recovery for people, as "busmedic history" prints
// each: when the bus came back, how long it was down, why recovery went
// as it did, then a line per job.
func (r Recovery) WriteText(w io.Writer) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s bus restarted (down %s)", r.Started.Local().Format("2006-01-02 15:04:05"), r.Bus, r.Downtime.Round(time.Millisecond))
	if r.Decision != "" {
		fmt.Fprintf(&b, ": %s", r.Decision)
	}
	b.WriteByte('\n')
	tw := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	for _, j := range r.Jobs {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", j.App, j.Outcome, j.Took.Round(time.Millisecond), j.Reason)
	}
	tw.Flush()
	_, err := w.Write(b.Bytes())
	return err
}

// WriteHistoryText writes the recoveries for people, as "busmedic
// history" prints them: each with its WriteText, or that there is none.
func WriteHistoryText(w io.Writer, h []Recovery) error {
	if len(h) == 0 {
		_, err := fmt.Fprintln(w, "No bus restarts recorded yet.")
		return err
	}
	for _, r := range h {
		if err := r.WriteText(w); err != nil {
			return err
		}
	}
	return nil
}

// Where says where a running app runs, as "dunst is running (pid 4242)
// on the session bus": for a rule on both buses, the session bus, which
// a relaunch acts on.
func (a AppStatus) Where() string {
	s := a.ID + " is running"
	if len(a.PIDs) > 0 {
		pids := make([]string, len(a.PIDs))
		for i, p := range a.PIDs {
			pids[i] = strconv.Itoa(p)
		}
		s += " (pid " + strings.Join(pids, ", ") + ")"
	}
	return s + " on the " + a.Buses()[0] + " bus"
}

// Text says how the job went, in one line for people, such as
// "relaunched at 12:03:01 (340ms)" or "failed at 12:03:01: no such
// process": "busmedic status" shows it after "last: ", and "busmedic
// relaunch" after the app's id.
func (j Job) Text() string {
	s := fmt.Sprintf("%s at %s", j.Outcome, clock(j.Started))
	if j.Took > 0 {
		s += fmt.Sprintf(" (%s)", j.Took.Round(time.Millisecond))
	}
	if j.Reason != "" {
		s += ": " + j.Reason
	}
	return s
}

// Recovered reports whether a job that ended so brought its app back, or
// did what its rule says (signal, hook, notify). A failed, skipped or
// cancelled job did not, and neither did one not yet ended.
func (o Outcome) Recovered() bool {
	switch o {
	case Reconnected, Relaunched, Signalled, Hooked, Notified, Kept:
		return true
	}
	return false
}

// clock is a time of day in the local time zone, or "-" for none.
func clock(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("15:04:05")
}

// WriteFollow writes the daemon's status to w now and again at each
// change that shows, until ctx is done (then it returns nil) or a write
// fails. It follows the daemon through its restarts (Follow): away gets
// why there is no daemon each time it finds none, and nil once one
// answers. For people (asJSON false), each status after the first comes
// under a line with the time of day; with asJSON, each status is one line
// of JSON, for a script to read as it comes.
func (c *Client) WriteFollow(ctx context.Context, w io.Writer, asJSON bool, away func(error)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var last []byte // the last status written: one that reads the same is not written again
	var failed error
	c.Follow(ctx, func(st *Status, err error) {
		away(err)
		if err != nil {
			return
		}
		var b bytes.Buffer
		if asJSON {
			err = json.NewEncoder(&b).Encode(st)
		} else {
			err = st.WriteText(&b)
		}
		if err == nil && bytes.Equal(b.Bytes(), last) {
			return
		}
		if err == nil {
			out := b.Bytes()
			if last != nil && !asJSON {
				out = append(fmt.Appendf(nil, "\n-- %s --\n", clock(time.Now())), out...)
			}
			_, err = w.Write(out)
		}
		if err != nil {
			failed = err
			cancel()
			return
		}
		last = b.Bytes()
	})
	return failed
}
