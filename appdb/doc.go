// Package appdb loads, validates, matches and saves busmedic's relaunch rules:
// the apps.toml files that say, for each application that cannot reconnect
// to a restarted D-Bus bus by itself, how to recognise it and what to do.
// It also suggests rules for running apps ([FromPeer], [FromProcess],
// [Learn], which says what is doubtful about the rule, and [LearnPID],
// which asks the buses besides which names the process owns) and
// writes rules out: as TOML ([FormatRule]), and as "busmedic rules list"
// prints them ([WriteTable], and [WriteJSON] for scripts).
//
// # Files and layers
//
// Rules come from system files ($XDG_CONFIG_DIRS/busmedic/apps.toml, usually
// /etc/xdg/busmedic/apps.toml) and one user file
// ($XDG_CONFIG_HOME/busmedic/apps.toml, or the file named by --config or
// BUSMEDIC_CONFIG). A rule in a more important file replaces a rule with the
// same id from a less important one, as a whole; the user file is the most
// important. See [DefaultPaths] and [Load].
//
// # Why go-toml/v2
//
// The TOML library is github.com/pelletier/go-toml/v2. Its decoder checks the
// TOML semantics (duplicate keys, redefined tables) and reports parse errors
// with line and column, and its unstable.Parser exposes the position of every
// key. appdb uses both: the decoder for values, the parser to map each key of
// each [[app]] table to its line, so that every validation error names
// FILE:LINE and the key, and so that the editing API ([File.AddOrReplace],
// [File.Remove]) can rewrite one [[app]] block and keep the rest of the file,
// comments included, byte for byte. BurntSushi/toml reports positions only
// for syntax errors, not for the keys of a decoded document.
//
// # Safety
//
// The recovery engine runs the commands of a rule (exec, hook). appdb
// therefore refuses to load a file that is writable by group or others, or
// owned by a user other than the current user or root (see [ErrUnsafe]),
// naming the target of a symlinked file. A file that others could replace
// all the same, because a directory above it (or above its symlink's
// target) is writable by them, loads with a warning.
//
// [CheckPath] is the one check, shared with the engine, of a file that
// busmedic runs: the file, every directory above it, and every symlink on
// the way must be owned by the user or root and not writable by group or
// others, except for sticky directories such as /tmp. [CommandFiles] lists
// what a command runs: its program, the script an interpreter is given
// (python3 x.py, sh x.sh), and for a shell's -c (shell = true) the
// programs and scripts of its command line. The engine refuses to start a
// command if any of them fails the check; loading warns about them, with
// the line and key of the rule and the fix.
package appdb
