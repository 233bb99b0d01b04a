// Package autostart makes busmedic start with the user's session, or stop
// doing so: busmedic only helps if it already runs when a bus restarts. It
// writes an XDG autostart entry ($XDG_CONFIG_HOME/autostart/busmedic.desktop)
// or, where a systemd user manager runs, a user unit
// ($XDG_CONFIG_HOME/systemd/user/busmedic.service), never both, and tells
// what it did. It never runs systemctl: enabling or disabling a unit is
// the user's to do, and it prints the line to run.
package autostart

import (
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
)

// Paths is where busmedic's autostart files go, from the environment.
type Paths struct {
	Entry string // $XDG_CONFIG_HOME/autostart/busmedic.desktop
	Unit  string // $XDG_CONFIG_HOME/systemd/user/busmedic.service
	// Systemd is true when a systemd user manager runs for this user: its
	// private socket is in $XDG_RUNTIME_DIR. The unit is then the way to
	// start busmedic unless the user says otherwise.
	Systemd bool
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
		Entry: filepath.Join(config, "autostart", "busmedic.desktop"),
		Unit:  filepath.Join(config, "systemd", "user", unitName),
	}
	if rt := getenv("XDG_RUNTIME_DIR"); rt != "" {
		_, err := os.Stat(filepath.Join(rt, "systemd", "private"))
		p.Systemd = err == nil
	}
	return p, nil
}

// Enable makes busmedic start with the session: with the user unit, started
// by target (such as graphical-session.target), when systemd is true, else
// with the autostart entry. It removes the entry the unit replaces, tells
// on stdout what it wrote and what is left to do, and warns on stderr when
// the running busmedic is a temporary build that the files would name.
func Enable(p Paths, systemd bool, target string, stdout, stderr io.Writer) error {
	exe, err := selfPath()
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
		if err := writeFile(p.Unit, assets.UserUnit(exe, target)); err != nil {
			return err
		}
		if removed, err := removeFile(p.Entry); err != nil {
			return err
		} else if removed {
			fmt.Fprintf(stdout, "Removed %s (the unit replaces it).\n", p.Entry)
		}
		fmt.Fprintf(stdout, "Wrote %s.\nTo start busmedic now and with every session, run:\n  systemctl --user daemon-reload && systemctl --user enable --now %s\n", p.Unit, unitName)
		if target == "graphical-session.target" {
			fmt.Fprintf(stdout, "If your desktop never starts graphical-session.target (Xfce, i3 and others on Debian 12),\nuse instead: busmedic autostart enable --desktop-file\n")
		}
		return nil
	}
	if err := writeFile(p.Entry, assets.AutostartEntry(autostartCommand(exe))); err != nil {
		return err
	}
	if _, err := os.Stat(p.Unit); err == nil {
		// Removing an enabled unit's file leaves a dangling symlink in
		// the target's .wants directory: the user disables it first.
		fmt.Fprintf(stdout, "%s is also in place: run\n  systemctl --user disable --now %s && rm %s\n", p.Unit, unitName, p.Unit)
	}
	fmt.Fprintf(stdout, "Wrote %s: busmedic starts with your next session.\nTo start it now: busmedic run &\n", p.Entry)
	return nil
}

// Disable removes the autostart entry; an enabled unit must be disabled
// through systemctl first, and it tells on stdout the line to run.
func Disable(p Paths, stdout io.Writer) error {
	removed, err := removeFile(p.Entry)
	if err != nil {
		return err
	}
	if removed {
		fmt.Fprintf(stdout, "Removed %s.\n", p.Entry)
	}
	if _, err := os.Stat(p.Unit); err == nil {
		// systemctl disable removes the .wants symlink that enable made;
		// removing the file first would leave it dangling.
		fmt.Fprintf(stdout, "To stop the systemd user unit and remove it, run:\n  systemctl --user disable --now %s && rm %s\n", unitName, p.Unit)
		return nil
	}
	if !removed {
		fmt.Fprintln(stdout, "busmedic does not start with the session; nothing to do.")
	}
	return nil
}

// Status tells on stdout which of the two files is in place.
func Status(p Paths, stdout io.Writer) error {
	found := false
	for _, f := range []struct{ path, what string }{
		{p.Entry, "XDG autostart entry"},
		{p.Unit, "systemd user unit"},
	} {
		_, err := os.Stat(f.path)
		switch {
		case err == nil:
			found = true
			fmt.Fprintf(stdout, "%s: %s\n", f.what, f.path)
			if f.path == p.Unit {
				if p.Systemd {
					fmt.Fprintf(stdout, "  check that it is enabled: systemctl --user is-enabled %s\n", unitName)
				} else {
					fmt.Fprintln(stdout, "  but no systemd user manager runs: it does not start")
				}
			}
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
	}
	if !found {
		fmt.Fprintln(stdout, "busmedic does not start with the session (enable it: busmedic autostart enable)")
	}
	return nil
}

// selfPath returns the absolute path of the running busmedic, symlinks
// resolved, so that the entry keeps working whatever the session's PATH.
func selfPath() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find busmedic's own path: %w", err)
	}
	if real, err := filepath.EvalSymlinks(exe); err == nil {
		exe = real
	}
	return exe, nil
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
