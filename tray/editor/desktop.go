package editor

import (
	"bufio"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/adrg/xdg"
)

// desktopInfo is what the editor takes from a desktop file.
type desktopInfo struct {
	ID, Name, Icon, Exec string
}

// desktopEntry is a desktop file's [Desktop Entry] group, as far as the
// editor reads it.
type desktopEntry struct {
	desktopInfo
	Type, TryExec     string
	Hidden, NoDisplay bool
}

// desktopFiles reads the application desktop files of the XDG data
// directories ($XDG_DATA_HOME, then $XDG_DATA_DIRS), keyed by desktop file
// id ("org.gnome.Foo.desktop"; "kde4-foo.desktop" for kde4/foo.desktop).
// As the Desktop Entry Specification says, the first file of an id is the
// one that counts, and an app whose first file is Hidden (removed), is
// NoDisplay (kept out of menus) or whose TryExec program is not installed
// is left out: a lower file of the same id does not bring it back.
func desktopFiles() map[string]desktopInfo {
	out := map[string]desktopInfo{}
	seen := map[string]bool{}
	for _, d := range append([]string{xdg.DataHome}, xdg.DataDirs...) {
		root := filepath.Join(d, "applications")
		filepath.WalkDir(root, func(path string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() || !strings.HasSuffix(path, ".desktop") {
				return nil // an unreadable directory hides only itself
			}
			rel, _ := filepath.Rel(root, path)
			id := strings.ReplaceAll(rel, string(filepath.Separator), "-")
			if seen[id] {
				return nil
			}
			seen[id] = true
			if e, ok := readDesktop(path); ok && e.shown() {
				e.ID = id
				out[id] = e.desktopInfo
			}
			return nil
		})
	}
	return out
}

// shown tells whether a menu would list the entry: an application with a
// name, not Hidden, not NoDisplay, and whose TryExec, if any, is an
// executable (a name is looked up in PATH).
func (e desktopEntry) shown() bool {
	if e.Type != "Application" || e.Name == "" || e.Hidden || e.NoDisplay {
		return false
	}
	if e.TryExec != "" {
		if _, err := exec.LookPath(e.TryExec); err != nil {
			return false
		}
	}
	return true
}

// readDesktop reads the [Desktop Entry] group of the desktop file at path;
// false if it cannot be read.
func readDesktop(path string) (desktopEntry, bool) {
	f, err := os.Open(path)
	if err != nil {
		return desktopEntry{}, false
	}
	defer f.Close()
	var e desktopEntry
	in, done := false, false
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() && !done {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			done = in // the group has ended
			in = line == "[Desktop Entry]"
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !in || !ok || strings.HasPrefix(line, "#") {
			continue
		}
		v = unescapeDesktop(strings.TrimSpace(v))
		switch strings.TrimSpace(k) {
		case "Type":
			e.Type = v
		case "Name":
			e.Name = v
		case "Icon":
			e.Icon = v
		case "Exec":
			e.Exec = v
		case "TryExec":
			e.TryExec = v
		case "Hidden":
			e.Hidden = v == "true"
		case "NoDisplay":
			e.NoDisplay = v == "true"
		}
	}
	return e, sc.Err() == nil
}

// unescapeDesktop undoes the escapes of a desktop file's string values:
// \s, \n, \t, \r and \\.
func unescapeDesktop(v string) string {
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '\\' || i+1 == len(v) {
			b.WriteByte(v[i])
			continue
		}
		i++
		switch v[i] {
		case 's':
			b.WriteByte(' ')
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case '\\':
			b.WriteByte('\\')
		default:
			b.WriteByte('\\')
			b.WriteByte(v[i])
		}
	}
	return b.String()
}

// desktopFor finds the desktop file whose Exec runs the program exe (by
// base name), or reports false.
func desktopFor(files map[string]desktopInfo, exe string) (desktopInfo, bool) {
	prog := filepath.Base(strings.TrimSuffix(exe, " (deleted)"))
	if prog == "" || prog == "." || prog == "/" {
		return desktopInfo{}, false
	}
	ids := slices.Sorted(maps.Keys(files)) // the same answer each time
	for _, id := range ids {
		info := files[id]
		fields := strings.Fields(info.Exec)
		for len(fields) > 0 && (fields[0] == "env" || strings.Contains(fields[0], "=")) {
			fields = fields[1:] // Exec=env VAR=x prog
		}
		if len(fields) > 0 && filepath.Base(strings.Trim(fields[0], `"`)) == prog {
			return info, true
		}
	}
	return desktopInfo{}, false
}
