// Package keep has one job: stand between apps and a D-Bus bus so that they
// live through its restarts.
//
// A [Keeper] listens on a socket of its own; a kept app connects there
// instead of to the bus (its DBUS_SESSION_BUS_ADDRESS points at the
// keeper). For each of the app's connections the keeper opens one
// connection to the real bus and forwards bytes both ways, parsing only the
// fixed header and the header fields of each message, and the bodies of the
// few messages it must understand: the app's calls to the bus driver
// (org.freedesktop.DBus), their replies, and the driver's name signals.
//
// When the bus goes away the app's connection stays open: method calls get
// org.freedesktop.DBus.Error.NoServer at once, other messages are dropped.
// When the bus is back the keeper reconnects every kept connection and
// replays what each had asked of the bus (Hello, AddMatch with its
// multiplicity, RequestName with its flags, BecomeMonitor), then tells each
// app what changed while it was away (NameOwnerChanged for the names it
// watched, in vanish-then-appear order; NameLost for a name it did not get
// back) before it goes live again. Every kept connection keeps the unique
// name of the bus it first connected to: the keeper rewrites the new names
// to the old ones, for the app itself and for the kept peers that talk to
// it.
package keep
