// Package editor is the rules editor window ("busmedic-rules"): it lists the
// relaunch rules of the user and system files, edits one rule at a time in a
// form validated by appdb as you type, saves through appdb, and lets you try
// a rule against the running daemon (plan, relaunch now, history). It offers
// rules for the apps of busmedic's catalog that are on the session bus now
// and that no rule covers; an offer only fills the form, the user saves it.
//
// The pure parts (the draft of a rule, the rules model, the formatting of
// plans and history) hold no widgets, so that they are tested with tables;
// the window (type editor) binds them to Fyne widgets and is tested with
// Fyne's test driver.
// The daemon is reached only through its control socket
// (busmedic/relaunch/control); without it the editor still edits, and says
// so in a banner.
//
// This package links Fyne, cgo and GL: the daemon (cmd/busmedic) must never
// import it.
package editor
