package assets

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

//go:embed catalog.toml
var catalogTOML []byte

// Behaviours a catalog entry can claim.
const (
	Exits = "exits" // the process ends when its bus goes
	Deaf  = "deaf"  // the process lives on, without the bus, and never reconnects
)

// Relaunch is the one action a catalog entry claims today: start the
// program again (stopping a deaf copy first, with SIGTERM).
const Relaunch = "relaunch"

// Parts a program plays in the StatusNotifier tray, for CatalogApp.Tray.
const (
	// TrayWatcher owns org.kde.StatusNotifierWatcher, with which every
	// tray icon registers.
	TrayWatcher = "watcher"
	// TrayHost shows the icons: it registers as a host with the watcher,
	// also with one that appears after it started.
	TrayHost = "host"
)

// Desktops a catalog entry names, for CatalogApp.Desktop.
const (
	KDE  = "KDE"
	LXQt = "LXQt"
)

// CatalogApp is a program known not to survive a restart of its bus, from
// catalog.toml. busmedic offers a rule for it on first run when it is on
// the session bus and the claim was verified.
type CatalogApp struct {
	// ID becomes the offered rule's id.
	ID   string `toml:"id"`
	Name string `toml:"name"`
	// Exe is the absolute path /proc/PID/exe shows; empty for a script,
	// whose exe is its interpreter.
	Exe string `toml:"exe"`
	// Cmdline is a glob for the command line, for entries without Exe.
	Cmdline string `toml:"cmdline"`
	// Names are the well-known bus names it owns, each of which a new copy
	// owns again: never a name of one process (a pid in it). The offered
	// rule waits for those the running copy owns.
	Names []string `toml:"names"`
	// Package is the Debian package that ships it.
	Package string `toml:"package"`
	// Behaviour is Exits or Deaf.
	Behaviour string `toml:"behaviour"`
	// Action is what brings it back after a restart, the offered rule's
	// action: Relaunch (the default).
	Action string `toml:"action"`
	// After are the names that must be on the new bus before it is
	// started, the offered rule's after; none for a program that copes
	// with whatever is missing when it starts.
	After []string `toml:"after"`
	// Tray is TrayWatcher or TrayHost for a program with a part in the
	// StatusNotifier tray, which the claim covers; else empty.
	Tray string `toml:"tray"`
	// Desktop is KDE or LXQt for a program that works fully only in that
	// desktop's session: kded5 loads its modules, the tray's watcher among
	// them, only where KDE_FULL_SESSION is set; lxqt-panel finds its
	// default panel only in LXQt's configuration directories. Empty for
	// any session.
	Desktop string `toml:"desktop"`
	// Why tells the mechanism, for the offer's text.
	Why string `toml:"why"`
	// Display is true for a program that needs an X display to start.
	Display bool `toml:"display"`
	// Verified is true when TestCatalogClaims checks the claim on a real
	// bus; Evidence says how, or, for an unverified entry, why not.
	Verified bool   `toml:"verified"`
	Evidence string `toml:"evidence"`
}

// Catalog returns the shipped catalog. An error means catalog.toml is
// broken, which its test catches before a release.
func Catalog() ([]CatalogApp, error) { return ParseCatalog(catalogTOML) }

// ParseCatalog reads a catalog in the format of catalog.toml: unknown keys
// and entries without an id, a matcher, a behaviour or evidence are errors.
func ParseCatalog(data []byte) ([]CatalogApp, error) {
	var doc struct {
		App []CatalogApp `toml:"app"`
	}
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	seen := map[string]bool{}
	var errs []error
	for i, a := range doc.App {
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("catalog: app %d (%q): %s", i+1, a.ID, fmt.Sprintf(format, args...)))
		}
		switch {
		case a.ID == "":
			bad("no id")
		case seen[a.ID]:
			bad("id used twice")
		}
		seen[a.ID] = true
		if a.Exe != "" && !filepath.IsAbs(a.Exe) {
			bad("exe %q is not an absolute path", a.Exe)
		}
		if a.Exe == "" && a.Cmdline == "" && len(a.Names) == 0 {
			bad("needs exe, cmdline or names")
		}
		if a.Behaviour != Exits && a.Behaviour != Deaf {
			bad("behaviour %q: want %q or %q", a.Behaviour, Exits, Deaf)
		}
		switch a.Action {
		case "":
			doc.App[i].Action = Relaunch
		case Relaunch:
		default:
			bad("action %q: the catalog claims %q only", a.Action, Relaunch)
		}
		for _, n := range a.After {
			if n == "" || n[0] == ':' || !strings.Contains(n, ".") {
				bad("after %q is not a well-known bus name", n)
			}
		}
		switch a.Tray {
		case "", TrayHost:
		case TrayWatcher:
			if !slices.Contains(a.Names, "org.kde.StatusNotifierWatcher") {
				bad("tray %q: names must hold org.kde.StatusNotifierWatcher", a.Tray)
			}
		default:
			bad("tray %q: want %q or %q", a.Tray, TrayWatcher, TrayHost)
		}
		if a.Desktop != "" && a.Desktop != KDE && a.Desktop != LXQt {
			bad("desktop %q: want %q, %q or none", a.Desktop, KDE, LXQt)
		}
		if a.Evidence == "" {
			bad("no evidence: say how the claim was checked, or why it was not")
		}
		if a.Verified && a.Exe == "" {
			bad("a verified entry needs exe: the offer matches on it")
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return doc.App, nil
}
