// Package autostart makes busmedic start with the user's session, or stop
// doing so: busmedic only helps if it already runs when a bus restarts. It
// writes an XDG autostart entry ($XDG_CONFIG_HOME/autostart/busmedic.desktop)
// or, where a systemd user manager runs, a user unit
// ($XDG_CONFIG_HOME/systemd/user/busmedic.service), never both, and tells
// what it did. A system-wide entry (/etc/xdg/autostart/busmedic.desktop,
// which the Debian package installs) starts busmedic for every user; the
// unit, or disabling, then needs a user entry of the same name with
// Hidden=true, which the XDG autostart specification (and systemd's
// generator of units from entries) reads as "not for this user".
//
// The unit it enables, starts, stops and disables itself, through the user
// manager's private socket (package usermanager), as "systemctl --user
// enable --now" and "disable --now" would; only when no user manager runs
// (a unit written ahead for a session to come) does it print the systemctl
// line to run instead.
package autostart

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"busmedic/appdb"
	"busmedic/assets"
	"busmedic/relaunch/control"
	"busmedic/usermanager"
)

// Paths is where busmedic's autostart files go, and the sockets autostart
// asks, from the environment.
type Paths struct {
	Entry string // $XDG_CONFIG_HOME/autostart/busmedic.desktop
	// SystemEntry is the system-wide entry of the same name in
	// $XDG_CONFIG_DIRS (/etc/xdg by default), if one is there: it starts
	// busmedic unless Entry overrides it.
	SystemEntry string
	Unit        string // $XDG_CONFIG_HOME/systemd/user/busmedic.service
	// Manager is the systemd user manager's private socket,
	// $XDG_RUNTIME_DIR/systemd/private.
	Manager string
	// Systemd is true when a systemd user manager listens at Manager.
	// The unit is then the way to start busmedic unless the user says
	// otherwise, and autostart enables and starts it there.
	Systemd bool
	// Control is the control socket a running busmedic listens at (as
	// "busmedic run" makes it by default): a second daemon, such as the
	// unit's, would fail on it.
	Control string
}

// unitName is the user unit's name, as systemctl --user takes it.
const unitName = "busmedic.service"

// PathsFrom reads the XDG variables through getenv at call time (not
// through adrg/xdg, which reads them once at start), so that tests can set
// them.
func PathsFrom(getenv func(string) string) (Paths, error) {
	config := getenv("XDG_CONFIG_HOME")
	if config == "" || !filepath.IsAbs(config) {
		home := getenv("HOME")
		if home == "" {
			return Paths{}, errors.New("neither XDG_CONFIG_HOME nor HOME is set")
		}
		config = filepath.Join(home, ".config")
	}
	p := Paths{
		Entry:   filepath.Join(config, "autostart", "busmedic.desktop"),
		Unit:    filepath.Join(config, "systemd", "user", unitName),
		Manager: usermanager.Socket(getenv),
		Control: control.DefaultPath(),
	}
	p.Systemd = usermanager.Running(p.Manager)
	dirs := getenv("XDG_CONFIG_DIRS")
	if dirs == "" {
		dirs = "/etc/xdg"
	}
	for _, d := range filepath.SplitList(dirs) {
		if !filepath.IsAbs(d) {
			continue
		}
		// The first directory holding the name wins, as for the
		// session's autostart.
		if e := filepath.Join(d, "autostart", "busmedic.desktop"); fileExists(e) {
			p.SystemEntry = e
			break
		}
	}
	if rt := getenv("XDG_RUNTIME_DIR"); rt != "" && filepath.IsAbs(rt) {
		// control.DefaultPath's layout, under the runtime directory read
		// now.
		p.Control = filepath.Join(rt, "busmedic", "control.sock")
	}
	return p, nil
}

// Enable makes busmedic start with the session: with the user unit, started
// by target (such as graphical-session.target), when systemd is true, else
// with the autostart entry. It removes the other one, tells on stdout what
// it did and what is left to do, and warns on stderr when the running
// busmedic is a temporary build that the files would name.
//
// With a user manager running, the unit is enabled and started at once,
// unless a busmedic already runs outside it (the unit's would fail on the
// control socket): then it is enabled only, and Enable says how to switch.
func Enable(ctx context.Context, p Paths, systemd bool, target string, stdout, stderr io.Writer) error {
	exe, err := assets.Executable()
	if err != nil {
		return err
	}
	if strings.Contains(exe, "/go-build") {
		// "go run" builds into a cache directory that goes away.
		fmt.Fprintf(stderr, "busmedic autostart: warning: %s is a temporary build; install busmedic first (make install)\n", exe)
	}
	// One way only: both would start two daemons, and the second one
	// would fail on the control socket at every login.
	if systemd {
		unit := assets.UserUnit(exe, target)
		if !p.Systemd {
			return writeUnitOnly(p, unit, target, stdout)
		}
		return withManager(ctx, p, func(ctx context.Context, m manager) error {
			return enableUnit(ctx, m, p, unit, target, stdout)
		})
	}
	if _, err := os.Stat(p.Unit); err == nil {
		if p.Systemd {
			if err := withManager(ctx, p, func(ctx context.Context, m manager) error {
				return removeUnit(ctx, m, p, stdout)
			}); err != nil {
				return err
			}
		} else {
			// Removing an enabled unit's file leaves a dangling symlink
			// in the target's .wants directory: the user disables it
			// first.
			fmt.Fprintf(stdout, "%s is also in place: run\n  systemctl --user disable --now %s && rm %s\n", p.Unit, unitName, p.Unit)
		}
	}
	if err := writeFile(p.Entry, assets.AutostartEntry(autostartCommand(exe))); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Wrote %s: busmedic starts with your next session.\nTo start it now: busmedic run &\n", p.Entry)
	return nil
}

// writeUnitOnly writes the unit where no user manager runs to enable it,
// and tells the systemctl line that will.
func writeUnitOnly(p Paths, unit []byte, target string, stdout io.Writer) error {
	if err := writeFile(p.Unit, unit); err != nil {
		return err
	}
	if err := removeEntry(p, stdout); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Wrote %s.\nNo systemd user manager runs now; in a session that has one, run:\n  systemctl --user daemon-reload && systemctl --user enable --now %s\n", p.Unit, unitName)
	graphicalHint(target, stdout)
	return nil
}

// graphicalHint tells the way out when target may never be reached.
func graphicalHint(target string, stdout io.Writer) {
	if target == "graphical-session.target" {
		fmt.Fprintf(stdout, "If your desktop never starts graphical-session.target (Xfce, i3 and others on Debian 12),\nuse instead: busmedic autostart enable --desktop-file\n")
	}
}

// Disable makes busmedic no longer start with the session: it removes the
// autostart entry (or, over a system-wide one, writes one that hides it), and disables, stops and removes the user unit, so that
// busmedic no longer runs from it (the apps it started keep running).
// Without a user manager it tells the systemctl line to run.
func Disable(ctx context.Context, p Paths, stdout io.Writer) error {
	var removed bool
	if p.SystemEntry != "" {
		if err := hideSystemEntry(p, stdout); err != nil {
			return err
		}
		removed = true
	} else {
		var err error
		if removed, err = removeFile(p.Entry); err != nil {
			return err
		}
		if removed {
			fmt.Fprintf(stdout, "Removed %s.\n", p.Entry)
		}
	}
	if _, err := os.Stat(p.Unit); err == nil {
		if !p.Systemd {
			// systemctl disable removes the .wants symlink that enable
			// made; removing the file first would leave it dangling.
			fmt.Fprintf(stdout, "To stop the systemd user unit and remove it, run:\n  systemctl --user disable --now %s && rm %s\n", unitName, p.Unit)
			return nil
		}
		if err := withManager(ctx, p, func(ctx context.Context, m manager) error {
			return removeUnit(ctx, m, p, stdout)
		}); err != nil {
			return err
		}
		removed = true
	}
	if removed {
		fmt.Fprintln(stdout, "busmedic no longer starts with the session.")
	} else {
		fmt.Fprintln(stdout, "busmedic does not start with the session; nothing to do.")
	}
	return nil
}

// Status tells on stdout which of the two files is in place, what the user
// manager says of the unit, and whether busmedic runs now.
func Status(ctx context.Context, p Paths, stdout io.Writer) error {
	if !p.Systemd {
		return status(ctx, nil, p, stdout)
	}
	ctx, cancel := context.WithTimeout(ctx, managerTimeout)
	defer cancel()
	conn, err := usermanager.Dial(ctx, p.Manager)
	if err != nil {
		// The files still tell how busmedic starts.
		fmt.Fprintf(stdout, "(%v)\n", err)
		return status(ctx, nil, p, stdout)
	}
	defer conn.Close()
	return status(ctx, conn, p, stdout)
}

func status(ctx context.Context, m manager, p Paths, stdout io.Writer) error {
	found := false
	hidden := isHiding(p.Entry)
	if p.SystemEntry != "" {
		if hidden {
			fmt.Fprintf(stdout, "system-wide XDG autostart entry: %s, hidden for you by %s\n", p.SystemEntry, p.Entry)
		} else if !fileExists(p.Entry) {
			found = true
			fmt.Fprintf(stdout, "system-wide XDG autostart entry: %s\n", p.SystemEntry)
		}
	}
	for _, f := range []struct{ path, what string }{
		{p.Entry, "XDG autostart entry"},
		{p.Unit, "systemd user unit"},
	} {
		if f.path == p.Entry && hidden {
			continue
		}
		_, err := os.Stat(f.path)
		switch {
		case err == nil:
			found = true
			fmt.Fprintf(stdout, "%s: %s\n", f.what, f.path)
			if f.path != p.Unit {
				continue
			}
			switch {
			case m != nil:
				st, err := stateOf(ctx, m)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "  %s\n", st)
			case p.Systemd:
				fmt.Fprintf(stdout, "  check that it is enabled: systemctl --user is-enabled %s\n", unitName)
			default:
				fmt.Fprintln(stdout, "  but no systemd user manager runs: it does not start")
			}
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
	}
	if !found {
		fmt.Fprintln(stdout, "busmedic does not start with the session (enable it: busmedic autostart enable)")
	}
	if pid := daemonPID(ctx, p.Control); pid > 0 {
		fmt.Fprintf(stdout, "busmedic runs now: %s\n", describe(ctx, m, pid))
	} else {
		fmt.Fprintln(stdout, "busmedic does not run now.")
	}
	return nil
}

// autostartCommand is the Exec of the autostart entry: "busmedic run" when
// the busmedic found in a system directory of PATH is this one, else the
// absolute path. A session's PATH holds /usr/bin and /usr/local/bin, but
// ~/.local/bin only if ~/.profile added it when it existed at login, so the
// plain name is trusted only in system directories.
func autostartCommand(exe string) []string {
	if found, err := exec.LookPath("busmedic"); err == nil {
		switch filepath.Dir(found) {
		case "/usr/bin", "/usr/local/bin", "/bin":
			a, errA := os.Stat(found)
			b, errB := os.Stat(exe)
			if errA == nil && errB == nil && os.SameFile(a, b) {
				return []string{"busmedic", "run"}
			}
		}
	}
	return []string{exe, "run"}
}

// removeEntry removes the autostart entry the unit replaces, and says so;
// over a system-wide entry it writes one that hides it instead, or the
// session would start a second busmedic beside the unit's.
func removeEntry(p Paths, stdout io.Writer) error {
	if p.SystemEntry != "" {
		return hideSystemEntry(p, stdout)
	}
	removed, err := removeFile(p.Entry)
	if err != nil {
		return err
	}
	if removed {
		fmt.Fprintf(stdout, "Removed %s (the unit replaces it).\n", p.Entry)
	}
	return nil
}

// hideSystemEntry writes the user's entry that hides the system-wide one.
func hideSystemEntry(p Paths, stdout io.Writer) error {
	if isHiding(p.Entry) {
		return nil
	}
	if err := writeFile(p.Entry, assets.HiddenAutostartEntry()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Wrote %s: it hides the system-wide %s for you.\n", p.Entry, p.SystemEntry)
	return nil
}

// isHiding reports whether the entry at path is one that hides busmedic's
// (Hidden=true).
func isHiding(path string) bool {
	data, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(data)) {
		if strings.TrimSpace(line) == "Hidden=true" {
			return true
		}
	}
	return false
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// writeFile writes data atomically, creating the directory.
func writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	return appdb.WriteAtomic(path, data, 0o644)
}

// removeFile removes path and reports whether it was there.
func removeFile(path string) (bool, error) {
	err := os.Remove(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	default:
		return false, fmt.Errorf("remove %s: %w", path, err)
	}
}
