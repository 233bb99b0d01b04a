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
//
// # Unique names
//
// A new bus numbers its connections from :1.0 again. Before it replays,
// the keeper connects and leaves until the bus hands out names past every
// one the kept apps know, so that no name an app remembers stands for a
// different connection on the new bus, and the map between the names the
// apps know and the bus's is one to one. Until a restart happens the map
// is empty and nothing is rewritten.
//
// # Serials
//
// The keeper's own calls (Hello, the replayed AddMatch and RequestName,
// GetNameOwner, GetId) are sent only on a fresh upstream connection while
// the app's messages wait, and are all answered before the app's go out:
// the app's serials need no rewriting, and the keeper's, counted from
// 0x80000000, cannot be taken for the app's.
//
// # Limits
//
// The bus sees the keeper's process behind every kept connection (as
// GetConnectionUnixProcessID tells). Calls in flight when the bus goes
// away get NoServer; signals sent while it is away are lost. What other
// peers remembered of a kept app is theirs to lose. An app told the owner
// of a watched name only by a signal before it started watching cannot be
// told that owner's vanishing, only the new owner.
package keep
