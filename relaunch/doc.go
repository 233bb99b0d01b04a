// Package relaunch brings apps back after a bus restart: from the watcher's
// events and the rules it plans one job per app that was on the bus when it
// went down, waits for the app to reconnect by itself, and otherwise acts by
// the app's rule (relaunch, signal, hook, notify), without ever starting an
// app twice or signalling a process that is not the one it saw. It keeps the
// history of what it did.
package relaunch
