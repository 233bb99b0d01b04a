package tray

import (
	"context"
	"fmt"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/prop"

	"busmedic/assets"
)

// Stock fyne.io/systray (v1.12.2) exports the StatusNotifierItem's
// properties with a fixed Status ("Active") and an empty IconName, both
// read-only, and offers no call to change them: a Set over D-Bus is
// refused, and its Properties object is not reachable from Go. The panel
// language needs both: Status (Passive, Active, NeedsAttention) tells the
// panel whether to tuck the icon away or highlight it, and IconName lets
// the icon theme restyle the icon (and monochrome panels take its
// -symbolic variant). So, once systray has exported the item, the tray
// takes over the item's org.freedesktop.DBus.Properties interface on the
// same object: godbus lets one Export replace another for a path and
// interface. The new Properties start with every value systray's had
// (read over the bus just before, so Id, Category, ItemIsMenu, Menu and
// Title stay systray's), and hold the ones the tray sets: Status,
// IconName, IconThemePath, IconPixmap (every size assets has, where systray
// sends one) and ToolTip (with a description, where systray sends only a
// title). The methods (Activate, the menu) stay systray's; after the
// takeover the tray sets the icon and tooltip here, not through systray,
// whose own Properties object nobody reads any more.

// The item's Status values.
const (
	statusPassive        = "Passive"
	statusActive         = "Active"
	statusNeedsAttention = "NeedsAttention"
)

const propsIface = "org.freedesktop.DBus.Properties"

// look is what the item shows: the properties the tray sets.
type look struct {
	Status string
	Icon   string // an icon of package assets
	// TipTitle and TipText are the tooltip's title and its description
	// (the reasons behind what the menu says in a few words).
	TipTitle, TipText string
}

// toolTip is the ToolTip property, (sa(iiay)ss): an icon name, pixmaps,
// a title and a description.
type toolTip struct {
	Icon   string
	Pixmap []pixmap
	Title  string
	Text   string
}

// themedIcons says whether and where the icon theme has the tray's icons.
type themedIcons struct {
	// ok: the icons are installed, so IconName names them.
	ok bool
	// path is where, when that is outside the usual icon directories
	// (busmedic installed under a PREFIX the desktop does not search):
	// the IconThemePath, which the panel adds to its search path.
	path string
}

// itemProps are the item's properties, as the tray serves them after taking
// them over from systray.
type itemProps struct {
	conn   *dbus.Conn
	props  *prop.Properties
	themed themedIcons
	shown  look
}

// takeItem takes over the properties of the item that systray exported on
// conn, showing lk, and tells the panel to read them again.
func takeItem(ctx context.Context, conn *dbus.Conn, themed themedIcons, lk look) (*itemProps, error) {
	ctx, cancel := context.WithTimeout(ctx, hostCallTimeout)
	defer cancel()
	var old map[string]dbus.Variant
	err := conn.Object(conn.Names()[0], itemPath).CallWithContext(ctx, propsIface+".GetAll", 0, itemIface).Store(&old)
	if err != nil {
		return nil, fmt.Errorf("read systray's item properties: %w", err)
	}
	px, err := pixmaps(lk.Icon)
	if err != nil {
		return nil, err
	}
	it := &itemProps{conn: conn, themed: themed, shown: lk}
	m := map[string]*prop.Prop{}
	for name, v := range old {
		// A value godbus decoded to other types than it was sent as
		// (structs come back as []any) cannot be served again as is;
		// those the tray sets below.
		if dbus.SignatureOf(v.Value()) == v.Signature() {
			m[name] = &prop.Prop{Value: v.Value(), Emit: prop.EmitTrue}
		}
	}
	for name, v := range map[string]any{
		"Status":        lk.Status,
		"IconName":      it.iconName(lk.Icon),
		"IconThemePath": themed.path,
		"IconPixmap":    px,
		"ToolTip":       toolTip{Pixmap: []pixmap{}, Title: lk.TipTitle, Text: lk.TipText},
	} {
		m[name] = &prop.Prop{Value: v, Emit: prop.EmitTrue}
	}
	props, err := prop.Export(conn, itemPath, prop.Map{itemIface: m})
	if err != nil {
		return nil, fmt.Errorf("serve the item's properties: %w", err)
	}
	it.props = props
	// A panel may have read systray's values already.
	for _, sig := range []struct {
		name string
		args []any
	}{{"NewStatus", []any{lk.Status}}, {"NewIcon", nil}, {"NewToolTip", nil}} {
		if err := conn.Emit(itemPath, itemIface+"."+sig.name, sig.args...); err != nil {
			return nil, fmt.Errorf("announce the item's properties: %w", err)
		}
	}
	return it, nil
}

// iconName is the IconName of an assets icon: its name in the icon theme
// when busmedic's icons are installed, else "" (the pixmaps alone).
func (it *itemProps) iconName(icon string) string {
	if !it.themed.ok {
		return ""
	}
	return assets.IconName(icon)
}

// show makes the item show lk, touching only what changed, and tells the
// panel with the signal of each change.
func (it *itemProps) show(lk look) error {
	old := it.shown
	if lk.Icon != old.Icon {
		px, err := pixmaps(lk.Icon)
		if err != nil {
			return err
		}
		// godbus's prop stores a new value into the old one's memory
		// when it is as long, while a panel's Get may still be sending
		// the old one: setting an empty list first makes it allocate
		// anew.
		if err := it.set("IconPixmap", []pixmap{}); err != nil {
			return err
		}
		if err := it.set("IconPixmap", px); err != nil {
			return err
		}
		if err := it.set("IconName", it.iconName(lk.Icon)); err != nil {
			return err
		}
		if err := it.conn.Emit(itemPath, itemIface+".NewIcon"); err != nil {
			return fmt.Errorf("announce the icon: %w", err)
		}
	}
	if lk.TipTitle != old.TipTitle || lk.TipText != old.TipText {
		if err := it.set("ToolTip", toolTip{Pixmap: []pixmap{}, Title: lk.TipTitle, Text: lk.TipText}); err != nil {
			return err
		}
		if err := it.conn.Emit(itemPath, itemIface+".NewToolTip"); err != nil {
			return fmt.Errorf("announce the tooltip: %w", err)
		}
	}
	if lk.Status != old.Status {
		if err := it.set("Status", lk.Status); err != nil {
			return err
		}
		if err := it.conn.Emit(itemPath, itemIface+".NewStatus", lk.Status); err != nil {
			return fmt.Errorf("announce the status: %w", err)
		}
	}
	it.shown = lk
	return nil
}

// set sets one property, which also sends PropertiesChanged. prop panics
// when that signal cannot be sent (the connection closed): that is an
// error here.
func (it *itemProps) set(name string, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("set %s: %v", name, r)
		}
	}()
	it.props.SetMust(itemIface, name, v)
	return nil
}
