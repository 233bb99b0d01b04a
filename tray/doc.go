// Package tray is busmedic's face on the desktop: a StatusNotifierItem whose
// icon, tooltip and menu render the daemon's status, and whose menu clicks
// go back to the daemon over its control socket.
//
// The tray runs as a child process ("busmedic tray", see Run) under the
// daemon's Supervise, because fyne.io/systray lives on the shared session
// bus connection and cannot survive that bus: when the bus goes, the child
// exits and the daemon starts a new one, which waits for the bus to be back
// and registers again. The tray holds nothing that is lost with it; all it
// shows comes from control.Status. Whether the item is visible at all is
// the panel's StatusNotifierWatcher's to say: the tray follows it on a
// connection of its own and logs "tray shown" once it holds the item, or
// that it waits while there is no watcher (after a bus restart, until the
// panel is back); a watcher that goes a second without the item (systray
// registers only at start and when a watcher appears, and misses one that
// appears just after its start) gets it from the tray itself. It tells the
// daemon (control.Client.ReportTray), which says so in "busmedic status"
// and, when no watcher ever came, once in a notification.
//
// The item speaks the panel's language: its Status is NeedsAttention when
// something waits for the user, Passive while all is well if the user
// chose tray = "when-needed", Active otherwise; its IconName names the
// icon as installed in the icon theme. systray fixes both, so the tray
// serves the item's properties itself once systray has exported it (see
// item.go). What destroys takes two clicks: a restart or a relaunch is
// the item of a submenu that says what it does. A click that fails is
// said in a notification, which the daemon shows (control.Client.Notify).
//
// The rules editor, a window of its own (EditorProgram), is found by
// FindEditor, for the tray's menu and for whoever else opens it: the
// daemon's notifications and "busmedic rules edit".
package tray
