package tray

import (
	"bytes"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"path/filepath"
	"slices"

	"busmedic/assets"
	"busmedic/icontheme"
)

// Stock systray sends a single pixmap, which panels then scale, blurred,
// to their own height. The tray serves the item's properties itself (see
// item.go) with every size assets has; the panel picks the size it needs.
// Where busmedic's icons are installed in the icon theme, the item names
// them too (IconName), and the panel prefers the theme's.
const (
	itemPath  = "/StatusNotifierItem" // where systray exports the item
	itemIface = "org.kde.StatusNotifierItem"
)

// pixmap is one size of an icon as StatusNotifierItem carries it, (iiay):
// ARGB32 in network byte order, not premultiplied.
type pixmap struct {
	W, H int32
	Pix  []byte
}

// pixmaps returns icon in every size assets has.
func pixmaps(icon string) ([]pixmap, error) {
	var px []pixmap
	for _, size := range assets.Sizes() {
		img, err := png.Decode(bytes.NewReader(assets.PNG(icon, size)))
		if err != nil {
			return nil, fmt.Errorf("icon %s at %d px: %w", icon, size, err)
		}
		// Drawn into straight-alpha RGBA (the icons are stored so, and
		// then it is a copy), then reordered to ARGB.
		b := img.Bounds()
		n := image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
		draw.Draw(n, n.Rect, img, b.Min, draw.Src)
		p := pixmap{W: int32(b.Dx()), H: int32(b.Dy()), Pix: make([]byte, 0, len(n.Pix))}
		for i := 0; i < len(n.Pix); i += 4 {
			p.Pix = append(p.Pix, n.Pix[i+3], n.Pix[i], n.Pix[i+1], n.Pix[i+2])
		}
		px = append(px, p)
	}
	return px, nil
}

// findThemedIcons finds busmedic's tray icons in the icon theme: in dirs,
// the icon directories the desktop searches (icontheme.BaseDirs), or else
// in the share/icons of the PREFIX that the executable exe is installed in
// (PREFIX/bin/busmedic), where scripts/install-files puts them.
func findThemedIcons(dirs []string, exe string) themedIcons {
	name := assets.IconName(assets.Healthy)
	if icontheme.New(icontheme.Hicolor, dirs, nil).Find(name, 22, 1) != "" {
		return themedIcons{ok: true}
	}
	if exe == "" {
		return themedIcons{}
	}
	share := filepath.Join(filepath.Dir(filepath.Dir(exe)), "share", "icons")
	// hicolor's index.theme is the system's: install-files does not
	// install one.
	if icontheme.New(icontheme.Hicolor, append(slices.Clone(dirs), share), nil).Find(name, 22, 1) != "" {
		return themedIcons{ok: true, path: share}
	}
	return themedIcons{}
}
