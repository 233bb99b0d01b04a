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

//go:embed icons/*.png icons/*.svg busmedic.desktop
var files embed.FS

// The icons, one per state the tray shows.
const (
	Healthy    = "healthy"
	Recovering = "recovering"
	Attention  = "attention"
	BusDown    = "busdown"
)

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

// DesktopEntry returns busmedic.desktop, the entry that starts busmedic
// with the session.
func DesktopEntry() []byte { return mustRead("busmedic.desktop") }

func mustRead(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		panic("assets: " + err.Error())
	}
	return b
}
