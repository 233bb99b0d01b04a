package tray

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"time"

	"github.com/godbus/dbus/v5"

	"busmedic/assets"
)

// Stock systray sends a single pixmap, which panels then scale, blurred,
// to their own height. Its IconPixmap property is writable on the bus,
// though, so the tray sets every size assets has there itself and tells the
// panel with NewIcon; the panel picks the size it needs.
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

// setPixmaps makes every size of icon the item's icon. conn is the
// connection systray exported the item on.
func setPixmaps(ctx context.Context, conn *dbus.Conn, icon string) error {
	px, err := pixmaps(icon)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	item := conn.Object(conn.Names()[0], itemPath)
	// godbus's prop stores a new value into the old one's memory when it
	// is as long, while a panel's Get may still be sending the old one:
	// setting an empty list first makes it allocate anew.
	for _, v := range [][]pixmap{{}, px} {
		if err := item.CallWithContext(ctx, "org.freedesktop.DBus.Properties.Set", 0, itemIface, "IconPixmap", dbus.MakeVariant(v)).Err; err != nil {
			return fmt.Errorf("set the icon: %w", err)
		}
	}
	if err := conn.Emit(itemPath, itemIface+".NewIcon"); err != nil {
		return fmt.Errorf("announce the icon: %w", err)
	}
	return nil
}
