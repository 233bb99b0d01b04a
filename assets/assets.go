// Package assets holds the files busmedic ships beside its code, embedded
// in the binary: the tray icons (SVG sources and PNGs at the sizes panels
// ask for) and the desktop entry.
package assets

import (
	"embed"
	"fmt"
	"slices"
)

//go:generate go run ./internal/gen -out icons

//go:embed icons/*.png icons/*.svg io.github.busmedic.busmedic.desktop
var files embed.FS

// The application ids, in reverse-DNS form as the Desktop Entry and
// AppStream specifications ask: each is the name of its desktop file in
// share/applications (ID + ".desktop"), of its AppStream file in
// share/metainfo (ID + ".metainfo.xml") and the id inside it, and:
//   - ID, the daemon's, is the "desktop-entry" hint of busmedic's
//     notifications, so that a notification server shows them as
//     busmedic's;
//   - EditorID, the rules editor's, is its Fyne app id and FyneApp.toml's
//     Details.ID.
//
// A test checks every file against these constants. The autostart entry
// keeps the name busmedic.desktop: it is not an application id but the
// name a user's ~/.config/autostart entry overrides the system's
// (/etc/xdg/autostart) by, and systemd names its unit after
// (app-busmedic@autostart.service).
const (
	ID       = "io.github.busmedic.busmedic"
	EditorID = "io.github.busmedic.rules"
)

// The icons, one per state the tray shows.
const (
	Healthy    = "healthy"
	Recovering = "recovering"
	Attention  = "attention"
	BusDown    = "busdown"
)

// Icons returns the tray icons, one per state.
func Icons() []string { return []string{Healthy, Recovering, Attention, BusDown} }

// IconName returns the name of icon in the icon theme: busmedic installs
// each tray icon under hicolor's status icons as "busmedic-healthy" and so
// on, with a symbolic variant ("busmedic-healthy-symbolic", SymbolicSVG)
// for the panels that draw tray icons in one colour.
func IconName(icon string) string { return "busmedic-" + icon }

// Sizes returns the pixel sizes every icon has a PNG for, smallest first.
func Sizes() []int { return []int{16, 22, 24, 32, 48, 64} }

// PNG returns the icon at size×size pixels. It panics on an icon or size
// that does not exist, as a missing embedded file is a build error.
func PNG(icon string, size int) []byte {
	if !slices.Contains(Sizes(), size) {
		panic(fmt.Sprintf("assets: no %d px size", size))
	}
	return mustRead(fmt.Sprintf("icons/%s-%d.png", icon, size))
}

// SVG returns the icon's scalable source.
func SVG(icon string) []byte { return mustRead("icons/" + icon + ".svg") }

// SymbolicSVG returns the icon's symbolic variant: one colour, which the
// desktop replaces with the panel's.
func SymbolicSVG(icon string) []byte { return mustRead("icons/" + icon + "-symbolic.svg") }

// DesktopEntry returns the daemon's desktop entry (ID + ".desktop"): "busmedic run",
// shown nowhere (NoDisplay), named by its notifications.
func DesktopEntry() []byte { return mustRead(ID + ".desktop") }

func mustRead(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		panic("assets: " + err.Error())
	}
	return b
}
