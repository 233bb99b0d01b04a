package control

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"busmedic/appdb"
)

// Lines says what recovery would do for the job's app, a line per fact
// for people: which processes it matches, what busmedic would do after the
// grace time (or why it would skip the app), and what it would start. The
// rules editor's plan view shows them, and "busmedic plan".
func (j PlannedJob) Lines() []string {
	var out []string
	var pids []string
	for _, p := range j.Peers {
		pids = append(pids, strconv.Itoa(p.PID))
	}
	if len(pids) > 0 {
		out = append(out, "it matches pid "+strings.Join(pids, ", "))
	}
	if j.Kept {
		// Whatever its rule says: the keeper holds its connection.
		return append(out, "it is kept by busmedic's keeper, which holds its connection: nothing to do")
	}
	if j.Skip != "" {
		return append(out, "busmedic would skip it: "+j.Skip)
	}
	out = append(out, fmt.Sprintf("after %s without it reconnecting, busmedic would %s", j.Rule.Grace, actionWords(j.Rule)))
	if j.Rule.Action == appdb.ActionRelaunch || j.Rule.Action == appdb.ActionKeep || j.Rule.Action == "" {
		if j.Unit != "" {
			out = append(out, "through the systemd user service "+j.Unit)
		} else if len(j.Command) > 0 {
			out = append(out, "command: "+strings.Join(j.Command, " "))
			if j.Dir != "" {
				out = append(out, "in: "+j.Dir)
			}
		}
	}
	if len(j.Rule.After) > 0 {
		out = append(out, "once these are on the bus: "+strings.Join(j.Rule.After, ", "))
	}
	return out
}

// actionWords is what busmedic would do for an app of rule r, after "busmedic would".
func actionWords(r appdb.Rule) string {
	switch r.Action {
	case appdb.ActionSignal:
		return "send it " + r.Signal
	case appdb.ActionHook:
		return "run " + strings.Join(r.Hook, " ")
	case appdb.ActionNotify:
		return "ask you in a notification"
	case appdb.ActionIgnore:
		return "do nothing"
	case appdb.ActionKeep:
		return "relaunch it through busmedic keep, so that it is kept from then on (stopping it first if it is still alive)"
	}
	return "relaunch it (stopping it first if it is still alive)"
}

// WritePlanText writes what recovery would do if bus restarted now, from
// the daemon's dry run (Client.Plan), as "busmedic plan" prints it: each
// app with the Lines of its job.
func WritePlanText(w io.Writer, bus string, jobs []PlannedJob) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "If the %s bus restarted now:\n", bus)
	if len(jobs) == 0 {
		b.WriteString("  no app with a rule is on it: busmedic would have nothing to do\n")
	}
	for _, j := range jobs {
		fmt.Fprintf(&b, "  %s\n", j.App)
		for _, l := range j.Lines() {
			fmt.Fprintf(&b, "    %s\n", l)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// writeAppPlanText writes, as WritePlanText, what recovery would do for
// the app id if bus restarted now, from jobs, the dry run of that bus; or
// that the app is not on it.
func writeAppPlanText(w io.Writer, bus, id string, jobs []PlannedJob) error {
	var mine []PlannedJob
	for _, j := range jobs {
		if j.App == id {
			mine = append(mine, j)
		}
	}
	if len(mine) == 0 {
		_, err := fmt.Fprintf(w, "If the %s bus restarted now:\n  %s is not on it: busmedic would not touch it\n", bus, id)
		return err
	}
	return WritePlanText(w, bus, mine)
}

// WritePlan writes what a restart of each bus would do now, from the
// daemon's dry runs; with an id, what it would do for that app only. It
// is "busmedic plan [ID]".
func (c *Client) WritePlan(ctx context.Context, w io.Writer, id string) error {
	if id == "" {
		for _, bus := range []string{"session", "system"} {
			jobs, err := c.Plan(ctx, bus)
			if err != nil {
				return err
			}
			if err := WritePlanText(w, bus, jobs); err != nil {
				return err
			}
		}
		return nil
	}
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	a, ok := st.App(id)
	if !ok {
		return unknownApp(id)
	}
	return c.writeAppPlans(ctx, w, a)
}

// WriteRelaunchDryRun writes what "busmedic relaunch ID" would do now,
// and for an app with a rule what a restart of its buses would do for it.
// It is "busmedic relaunch --dry-run ID".
func (c *Client) WriteRelaunchDryRun(ctx context.Context, w io.Writer, id string) error {
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if a, ok := st.App(id); ok {
		if a.Running {
			fmt.Fprintf(w, "%s: busmedic relaunch --force %s would stop it and start it again.\n", a.Where(), id)
		} else {
			fmt.Fprintf(w, "%s is not running: busmedic relaunch %s would start it.\n", id, id)
		}
		return c.writeAppPlans(ctx, w, a)
	}
	cas, ok := st.Casualty(id)
	if !ok {
		return unknownApp(id)
	}
	fmt.Fprintf(w, "%s fell off the %s bus (%s): busmedic relaunch %s would start it again", id, cas.Bus, cas.Peer, id)
	if len(cas.Peer.Argv) > 0 {
		fmt.Fprintf(w, ":\n  command: %s", strings.Join(cas.Peer.Argv, " "))
		if cas.Peer.Cwd != "" {
			fmt.Fprintf(w, "\n  in: %s", cas.Peer.Cwd)
		}
	}
	_, err = fmt.Fprintln(w)
	return err
}

// unknownApp is the error of an id that is neither an app nor a casualty.
func unknownApp(id string) error {
	return coded(ErrUnknownApp, "%s: %s (busmedic status lists them)", ErrUnknownApp, id)
}

// writeAppPlans writes what a restart of each of app a's buses would do
// for it now.
func (c *Client) writeAppPlans(ctx context.Context, w io.Writer, a AppStatus) error {
	for _, bus := range a.Buses() {
		jobs, err := c.Plan(ctx, bus)
		if err != nil {
			return err
		}
		if err := writeAppPlanText(w, bus, a.ID, jobs); err != nil {
			return err
		}
	}
	return nil
}
