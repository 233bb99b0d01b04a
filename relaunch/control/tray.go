package control

import "busmedic/appdb"

// The tray child's part of the contract: what it tells the daemon of its
// icon (OpTray), and the notifications it asks the daemon to show
// (OpNotify), since the daemon owns busmedic's notifications.

// The choices of the [settings] key tray (appdb.Settings.Tray).
const (
	// TrayAlways: the tray icon is always active.
	TrayAlways = appdb.TrayAlways
	// TrayWhenNeeded: the icon is passive while all is well, so that
	// panels may tuck it away, and active when there is news.
	TrayWhenNeeded = appdb.TrayWhenNeeded
	// TrayNever: no tray icon; the daemon runs no tray child.
	TrayNever = appdb.TrayNever
)

// TrayHost is what the tray child found out about who shows its icon: the
// panel's StatusNotifierWatcher, the registry of tray icons.
type TrayHost struct {
	// Watcher: a StatusNotifierWatcher is on the session bus.
	Watcher bool `json:"watcher"`
	// Shown: the watcher holds the tray's item, so a panel shows it.
	Shown bool `json:"shown"`
}

// TrayStatus is the tray icon as Status tells it.
type TrayStatus struct {
	// Show is the [settings] tray choice: TrayAlways, TrayWhenNeeded or
	// TrayNever.
	Show string `json:"show"`
	// Host is what the running tray child last reported; nil while none
	// has (there is no tray, or it is starting).
	Host *TrayHost `json:"host,omitempty"`
}

// NoTrayHost is what busmedic says when no StatusNotifierWatcher is on the
// session bus: once in a notification, and in "busmedic status" while it
// lasts.
const NoTrayHost = "the tray icon cannot show: no StatusNotifierWatcher; on GNOME install gnome-shell-extension-appindicator"

// Problem returns what keeps the tray icon from showing, for people, or ""
// when nothing does, nothing is known, or no icon is wanted.
func (t *TrayStatus) Problem() string {
	if t == nil || t.Host == nil || t.Host.Watcher || t.Show == TrayNever {
		return ""
	}
	return NoTrayHost
}

// WhenNeeded reports whether the icon is to be passive while all is well.
func (t *TrayStatus) WhenNeeded() bool { return t != nil && t.Show == TrayWhenNeeded }

// Notice is a notification a client asks the daemon to show (OpNotify),
// such as the tray's word on a click that failed. The daemon shows it as
// it shows its own: with busmedic's name, icon and desktop entry.
type Notice struct {
	Title string `json:"title"`
	Body  string `json:"body,omitempty"`
	// Critical: it is about something that needs the user (urgency
	// critical); otherwise urgency normal.
	Critical bool `json:"critical,omitempty"`
}
