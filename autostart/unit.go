package autostart

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"

	"busmedic/usermanager"
)

// manager is what autostart asks of the systemd user manager: the methods
// of go-systemd's connection it calls, so that a test can stand in for it.
type manager interface {
	ReloadContext(ctx context.Context) error
	EnableUnitFilesContext(ctx context.Context, files []string, runtime, force bool) (bool, []sdbus.EnableUnitFileChange, error)
	DisableUnitFilesContext(ctx context.Context, files []string, runtime bool) ([]sdbus.DisableUnitFileChange, error)
	StartUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error)
	StopUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error)
	ResetFailedUnitContext(ctx context.Context, name string) error
	GetUnitPropertiesContext(ctx context.Context, unit string) (map[string]any, error)
	GetServicePropertyContext(ctx context.Context, service, name string) (*sdbus.Property, error)
	GetUnitNameByPID(ctx context.Context, pid uint32) (string, error)
}

// managerTimeout bounds the whole conversation with the user manager: a
// start job of a Type=exec unit ends once busmedic is executed, well
// within it, and a manager that does not answer must not hang the command.
const managerTimeout = 30 * time.Second

// withManager runs do with a connection to the user manager at p.Manager,
// all of it within managerTimeout.
func withManager(ctx context.Context, p Paths, do func(ctx context.Context, m manager) error) error {
	ctx, cancel := context.WithTimeout(ctx, managerTimeout)
	defer cancel()
	conn, err := usermanager.Dial(ctx, p.Manager)
	if err != nil {
		return err
	}
	defer conn.Close()
	return do(ctx, conn)
}

// enableUnit writes unit, enables it as "systemctl --user reenable" does
// (the symlinks follow its [Install] section even when the target changed
// since last time), makes the manager read it, and starts it unless a
// busmedic already runs.
func enableUnit(ctx context.Context, m manager, p Paths, unit []byte, target string, stdout io.Writer) error {
	old, _ := os.ReadFile(p.Unit)
	if err := writeFile(p.Unit, unit); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Wrote %s.\n", p.Unit)
	if err := removeEntry(p, stdout); err != nil {
		return err
	}
	removed, err := m.DisableUnitFilesContext(ctx, []string{unitName}, false)
	if err != nil {
		return fmt.Errorf("disable %s before enabling it again: %w", unitName, err)
	}
	_, created, err := m.EnableUnitFilesContext(ctx, []string{unitName}, false, false)
	if err != nil {
		return fmt.Errorf("enable %s: %w", unitName, err)
	}
	for _, line := range symlinkChanges(removed, created) {
		fmt.Fprintln(stdout, line)
	}
	// As systemctl enable does: the manager reads the new file and the
	// new symlinks.
	if err := m.ReloadContext(ctx); err != nil {
		return fmt.Errorf("reload the systemd user manager: %w", err)
	}
	fmt.Fprintf(stdout, "Enabled %s: busmedic starts with every session that reaches %s.\n", unitName, target)
	graphicalHint(target, stdout)

	// A second busmedic fails on the control socket: start the unit's
	// only if none runs.
	if pid := daemonPID(ctx, p.Control); pid > 0 {
		if u, err := m.GetUnitNameByPID(ctx, uint32(pid)); err == nil && u == unitName {
			fmt.Fprintf(stdout, "%s already runs (pid %d).\n", unitName, pid)
			if string(old) != string(unit) {
				fmt.Fprintf(stdout, "The new unit takes effect when it starts again: systemctl --user restart %s\n", unitName)
			}
			return nil
		}
		fmt.Fprintf(stdout, "busmedic already runs (%s), outside %s: a second busmedic would fail on its control socket,\n"+
			"so %s is not started now; it starts with your next session.\n"+
			"To switch now, quit the running busmedic (Quit in its tray menu, or kill %d), then run:\n  systemctl --user start %s\n",
			describe(ctx, m, pid), unitName, unitName, pid, unitName)
		return nil
	}
	st, err := stateOf(ctx, m)
	if err != nil {
		return err
	}
	switch st.Active {
	case "active", "activating", "reloading":
		// Running under another control socket, or on its way up
		// (activating also covers the wait before a restart).
		fmt.Fprintf(stdout, "%s is already %s (%s).\n", unitName, st.Active, st.Sub)
		return nil
	case "failed":
		// A start limit reached earlier would refuse the start the
		// user asks for now.
		if err := m.ResetFailedUnitContext(ctx, unitName); err != nil {
			return fmt.Errorf("reset the failed state of %s: %w", unitName, err)
		}
	}
	if err := runJob(ctx, "start", func(ch chan<- string) (int, error) {
		return m.StartUnitContext(ctx, unitName, "replace", ch)
	}); err != nil {
		return err
	}
	st, err = stateOf(ctx, m)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Started %s: busmedic runs now (%s).\n", unitName, st)
	return nil
}

// removeUnit undoes enableUnit, as "systemctl --user disable --now" and
// removing the file would: busmedic started by the unit stops (the apps it
// started keep running: in their own scopes, or kept by KillMode=process),
// and the manager forgets the unit.
func removeUnit(ctx context.Context, m manager, p Paths, stdout io.Writer) error {
	removed, err := m.DisableUnitFilesContext(ctx, []string{unitName}, false)
	if err != nil {
		return fmt.Errorf("disable %s: %w", unitName, err)
	}
	for _, line := range symlinkChanges(removed, nil) {
		fmt.Fprintln(stdout, line)
	}
	st, err := stateOf(ctx, m)
	if err != nil {
		return err
	}
	switch st.Active {
	case "active", "activating", "reloading":
		if err := runJob(ctx, "stop", func(ch chan<- string) (int, error) {
			return m.StopUnitContext(ctx, unitName, "replace", ch)
		}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Stopped %s: busmedic no longer runs (the apps it started keep running; run it for this session with: busmedic run &).\n", unitName)
	case "failed":
		// Else it stays listed in systemctl --user --failed, with no file.
		if err := m.ResetFailedUnitContext(ctx, unitName); err != nil {
			return fmt.Errorf("reset the failed state of %s: %w", unitName, err)
		}
	}
	if _, err := removeFile(p.Unit); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Removed %s.\n", p.Unit)
	if err := m.ReloadContext(ctx); err != nil {
		return fmt.Errorf("reload the systemd user manager: %w", err)
	}
	return nil
}

// runJob runs a job of the unit (start or stop) through start, and waits
// for its result: only "done" is success.
func runJob(ctx context.Context, what string, start func(ch chan<- string) (int, error)) error {
	// Buffered: go-systemd sends the result while holding its job lock,
	// and nobody reads once ctx is done.
	ch := make(chan string, 1)
	if _, err := start(ch); err != nil {
		return fmt.Errorf("%s %s: %w", what, unitName, err)
	}
	select {
	case result := <-ch:
		return jobError(what, result)
	case <-ctx.Done():
		return fmt.Errorf("%s %s: no result from the user manager: %w", what, unitName, ctx.Err())
	}
}

// jobError turns a job's result into an error, nil for "done". The
// results are systemd's (org.freedesktop.systemd1(5), JobRemoved).
func jobError(what, result string) error {
	if result == "done" {
		return nil
	}
	why := map[string]string{
		"failed":     "it failed",
		"timeout":    "it timed out",
		"canceled":   "it was canceled",
		"dependency": "a unit it depends on failed",
		"skipped":    "it did not apply",
	}[result]
	if why == "" {
		why = "result " + result
	}
	return fmt.Errorf("%s %s: %s; see journalctl --user -u %s", what, unitName, why, unitName)
}

// symlinkChanges says what enabling or disabling changed, as systemctl
// does; a symlink removed and made again (enable after disable, the same
// target) is no change.
func symlinkChanges(removed []sdbus.DisableUnitFileChange, created []sdbus.EnableUnitFileChange) []string {
	var lines []string
	for _, r := range removed {
		if r.Type == "unlink" && !slices.ContainsFunc(created, func(c sdbus.EnableUnitFileChange) bool { return c.Filename == r.Filename }) {
			lines = append(lines, fmt.Sprintf("Removed %s.", r.Filename))
		}
	}
	for _, c := range created {
		if c.Type == "symlink" && !slices.ContainsFunc(removed, func(r sdbus.DisableUnitFileChange) bool { return r.Filename == c.Filename }) {
			lines = append(lines, fmt.Sprintf("Created symlink %s → %s.", c.Filename, c.Destination))
		}
	}
	return lines
}

// unitState is what the user manager says of busmedic.service.
type unitState struct {
	File   string // UnitFileState: enabled, disabled, ...
	Active string // ActiveState: active, inactive, failed, ...
	Sub    string // SubState: running, dead, auto-restart, ...
	PID    uint32 // MainPID, 0 if none
}

// String is the state in systemctl's words: "enabled, active (running),
// pid 1234".
func (s unitState) String() string {
	file := s.File
	if file == "" {
		file = "not installed"
	}
	out := fmt.Sprintf("%s, %s (%s)", file, s.Active, s.Sub)
	if s.PID > 0 {
		out += fmt.Sprintf(", pid %d", s.PID)
	}
	return out
}

// stateOf asks the user manager for busmedic.service's state.
func stateOf(ctx context.Context, m manager) (unitState, error) {
	props, err := m.GetUnitPropertiesContext(ctx, unitName)
	if err != nil {
		return unitState{}, fmt.Errorf("state of %s: %w", unitName, err)
	}
	str := func(k string) string { s, _ := props[k].(string); return s }
	st := unitState{File: str("UnitFileState"), Active: str("ActiveState"), Sub: str("SubState")}
	if st.Active != "inactive" && st.Active != "failed" {
		prop, err := m.GetServicePropertyContext(ctx, unitName, "MainPID")
		if err != nil {
			return unitState{}, fmt.Errorf("main pid of %s: %w", unitName, err)
		}
		st.PID, _ = prop.Value.Value().(uint32)
	}
	return st, nil
}

// describe names the busmedic daemon at pid and the unit it runs in, if
// the manager is there to say.
func describe(ctx context.Context, m manager, pid int) string {
	if m != nil {
		if u, err := m.GetUnitNameByPID(ctx, uint32(pid)); err == nil && u != "" {
			return fmt.Sprintf("pid %d, in %s", pid, u)
		}
	}
	return fmt.Sprintf("pid %d", pid)
}
