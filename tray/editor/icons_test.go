package editor

import (
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
	"github.com/adrg/xdg"

	"busmedic/assets"
)

// put writes data at path, making its directories.
func put(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// xdgData points the XDG data directories (and HOME, for ~/.icons) at a
// new temporary tree and returns its user and system data directories.
func xdgData(t *testing.T) (home, system string) {
	root := t.TempDir()
	home, system = filepath.Join(root, "home/.local/share"), filepath.Join(root, "usr/share")
	t.Setenv("HOME", filepath.Join(root, "home"))
	t.Setenv("XDG_DATA_HOME", home)
	t.Setenv("XDG_DATA_DIRS", system)
	xdg.Reload()
	t.Cleanup(xdg.Reload)
	return home, system
}

func desktopFile(name, icon string, extra ...string) []byte {
	s := "[Desktop Entry]\nType=Application\nName=" + name + "\nExec=" + name + " %U\nIcon=" + icon + "\n"
	for _, e := range extra {
		s += e + "\n"
	}
	return []byte(s)
}

// TestDesktopFiles: desktop files are found in $XDG_DATA_HOME and
// $XDG_DATA_DIRS, by id, the first file of an id deciding; Hidden,
// NoDisplay, and a TryExec that is not installed leave the app out.
func TestDesktopFiles(t *testing.T) {
	home, system := xdgData(t)
	apps := filepath.Join(system, "applications")
	put(t, filepath.Join(apps, "viewer.desktop"), desktopFile("viewer", "viewer-icon"))
	put(t, filepath.Join(apps, "kde4/nested.desktop"), desktopFile("nested", "n"))
	put(t, filepath.Join(apps, "hidden.desktop"), desktopFile("hidden", "h", "Hidden=true"))
	put(t, filepath.Join(apps, "nodisplay.desktop"), desktopFile("nodisplay", "n", "NoDisplay=true"))
	put(t, filepath.Join(apps, "tryexec-missing.desktop"), desktopFile("missing", "m", "TryExec=busmedic-no-such-program"))
	put(t, filepath.Join(apps, "tryexec-abs-missing.desktop"), desktopFile("missing", "m", "TryExec=/nonexistent/busmedic"))
	put(t, filepath.Join(apps, "tryexec-present.desktop"), desktopFile("present", "p", "TryExec=sh"))
	put(t, filepath.Join(apps, "link.desktop"), []byte("[Desktop Entry]\nType=Link\nName=Web\nURL=https://example.org\n"))
	put(t, filepath.Join(apps, "noname.desktop"), []byte("[Desktop Entry]\nType=Application\nExec=x\n"))
	put(t, filepath.Join(apps, "escaped.desktop"), desktopFile(`two\swords`, "e", "X-Other=1",
		"[Desktop Action new]", "Name=Not the app's name", "Icon=not-the-app-icon"))
	// The user hides one system app, and changes another.
	put(t, filepath.Join(apps, "masked.desktop"), desktopFile("masked", "m"))
	put(t, filepath.Join(home, "applications/masked.desktop"), desktopFile("masked", "m", "Hidden=true"))
	put(t, filepath.Join(apps, "changed.desktop"), desktopFile("changed", "system-icon"))
	put(t, filepath.Join(home, "applications/changed.desktop"), desktopFile("changed", "user-icon"))
	put(t, filepath.Join(home, "applications/notes.txt"), []byte("not a desktop file"))

	files := desktopFiles()
	want := []string{"changed.desktop", "escaped.desktop", "kde4-nested.desktop", "tryexec-present.desktop", "viewer.desktop"}
	if got := slices.Sorted(maps.Keys(files)); !slices.Equal(got, want) {
		t.Errorf("desktop files %q, want %q", got, want)
	}
	if e := files["changed.desktop"]; e.Icon != "user-icon" {
		t.Errorf("the user's file does not win: %+v", e)
	}
	if e := files["escaped.desktop"]; e.Name != "two words" || e.Icon != "e" {
		t.Errorf("escaped: %+v; want the [Desktop Entry] group's name and icon, unescaped", e)
	}
	if e, ok := desktopFor(files, "/usr/bin/viewer"); !ok || e.ID != "viewer.desktop" {
		t.Errorf("desktopFor(/usr/bin/viewer) = %+v, %v", e, ok)
	}
	if _, ok := desktopFor(files, "/usr/bin/hidden"); ok {
		t.Error("desktopFor found a Hidden app")
	}
}

func TestUnescapeDesktop(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:        "plain",
		`a\sb`:         "a b",
		`a\nb\tc\rd`:   "a\nb\tc\rd",
		`back\\slash`:  `back\slash`,
		`unknown\;x`:   `unknown\;x`,
		`trailing\`:    `trailing\`,
		`\\s is not s`: `\s is not s`,
	} {
		if got := unescapeDesktop(in); got != want {
			t.Errorf("unescapeDesktop(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestRowIcons: each rule's row shows its own icon, found through the
// icon theme: the rule's icon key or its desktop file's Icon, in the
// current theme, a theme it inherits, then hicolor; Fyne's generic icon
// when there is none (or the desktop file is Hidden).
func TestRowIcons(t *testing.T) {
	home, system := xdgData(t)
	icons := filepath.Join(system, "icons")
	fixed48 := func(name, inherits string) []byte {
		s := "[Icon Theme]\nName=" + name + "\n"
		if inherits != "" {
			s += "Inherits=" + inherits + "\n"
		}
		return []byte(s + "Directories=48x48/apps,16x16/apps\n\n[48x48/apps]\nSize=48\nType=Fixed\n\n[16x16/apps]\nSize=16\nType=Fixed\n")
	}
	// Four different pictures, to tell which file a row shows.
	themed, inherited, hicolor, small := assets.PNG(assets.Healthy, 48), assets.PNG(assets.Attention, 48),
		assets.PNG(assets.BusDown, 48), assets.PNG(assets.Recovering, 16)
	put(t, filepath.Join(icons, "Current/index.theme"), fixed48("Current", "Base"))
	put(t, filepath.Join(icons, "Current/48x48/apps/themed-app.png"), themed)
	put(t, filepath.Join(icons, "Current/16x16/apps/themed-app.png"), small)
	put(t, filepath.Join(icons, "Base/index.theme"), fixed48("Base", ""))
	put(t, filepath.Join(icons, "Base/48x48/apps/viewer-icon.png"), inherited)
	put(t, filepath.Join(icons, "hicolor/index.theme"), fixed48("Hicolor", ""))
	put(t, filepath.Join(icons, "hicolor/48x48/apps/themed-app.png"), hicolor)
	put(t, filepath.Join(icons, "hicolor/48x48/apps/hicolor-app.png"), hicolor)
	// The user's own icons, in ~/.local/share/icons: smaller only.
	put(t, filepath.Join(home, "icons/hicolor/16x16/apps/user-app.png"), small)
	apps := filepath.Join(system, "applications")
	put(t, filepath.Join(apps, "viewer.desktop"), desktopFile("viewer", "viewer-icon"))
	put(t, filepath.Join(apps, "gone.desktop"), desktopFile("gone", "themed-app", "Hidden=true"))

	f := newFixture(t, fixtureOpts{iconTheme: "Current", user: `version = 1
[[app]]
id = "themed"
exe = "/usr/bin/themed"
icon = "themed-app"

[[app]]
id = "viewer"
exe = "/usr/bin/viewer"
desktop = "viewer.desktop"

[[app]]
id = "plain"
exe = "/usr/bin/plain"
icon = "hicolor-app"

[[app]]
id = "user"
exe = "/usr/bin/user"
icon = "user-app"

[[app]]
id = "gone"
exe = "/usr/bin/gone"
desktop = "gone.desktop"

[[app]]
id = "unknown"
exe = "/usr/bin/unknown"
icon = "no-such-icon"
`})
	want := map[string][]byte{"themed": themed, "viewer": inherited, "plain": hicolor, "user": small,
		"gone": theme.ComputerIcon().Content(), "unknown": theme.ComputerIcon().Content()}
	if len(f.ed.entries) != len(want) {
		t.Fatalf("%d rules in the list, want %d", len(f.ed.entries), len(want))
	}
	for _, en := range f.ed.entries {
		row := f.ed.list.CreateItem().(*fyne.Container)
		f.ed.fillRow(en, row)
		var icon *widget.Icon
		for _, o := range row.Objects {
			if i, ok := o.(*widget.Icon); ok {
				icon = i
			}
		}
		if icon == nil || icon.Resource == nil {
			t.Fatalf("row of %s has no icon", en.Rule.ID)
		}
		if !bytes.Equal(icon.Resource.Content(), want[en.Rule.ID]) {
			t.Errorf("row of %s shows %s, not its own icon", en.Rule.ID, icon.Resource.Name())
		}
	}
}
