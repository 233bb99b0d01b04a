package editor

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"

	"github.com/adrg/xdg"
)

// desktopInfo is what the editor takes from a desktop file.
type desktopInfo struct {
	ID, Name, Icon, Exec string
}

// desktopFiles reads the [Desktop Entry] of every application desktop file
// in the XDG data directories, the first of an id winning as the spec
// says.
func desktopFiles() map[string]desktopInfo {
	out := map[string]desktopInfo{}
	dirs := append([]string{xdg.DataHome}, xdg.DataDirs...)
	for _, d := range dirs {
		matches, _ := filepath.Glob(filepath.Join(d, "applications", "*.desktop"))
		for _, m := range matches {
			id := filepath.Base(m)
			if _, seen := out[id]; seen {
				continue
			}
			if info, ok := readDesktop(m); ok {
				info.ID = id
				out[id] = info
			}
		}
	}
	return out
}

func readDesktop(path string) (desktopInfo, bool) {
	f, err := os.Open(path)
	if err != nil {
		return desktopInfo{}, false
	}
	defer f.Close()
	var info desktopInfo
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			in = line == "[Desktop Entry]"
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !in || !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "Name":
			info.Name = strings.TrimSpace(v)
		case "Icon":
			info.Icon = strings.TrimSpace(v)
		case "Exec":
			info.Exec = strings.TrimSpace(v)
		}
	}
	return info, info.Name != ""
}

// desktopFor finds the desktop file whose Exec runs the program exe (by
// base name), or reports false.
func desktopFor(files map[string]desktopInfo, exe string) (desktopInfo, bool) {
	prog := filepath.Base(strings.TrimSuffix(exe, " (deleted)"))
	if prog == "" || prog == "." || prog == "/" {
		return desktopInfo{}, false
	}
	for _, info := range files {
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

// iconPath finds the file of an icon: an absolute path as is, else a name
// looked up in the hicolor theme and pixmaps (PNG or SVG), or "".
func iconPath(icon string) string {
	if icon == "" {
		return ""
	}
	if filepath.IsAbs(icon) {
		if _, err := os.Stat(icon); err == nil {
			return icon
		}
		return ""
	}
	dirs := append([]string{xdg.DataHome}, xdg.DataDirs...)
	for _, d := range dirs {
		for _, sub := range []string{"48x48/apps", "64x64/apps", "scalable/apps", "32x32/apps", "128x128/apps"} {
			for _, ext := range []string{".png", ".svg"} {
				p := filepath.Join(d, "icons", "hicolor", sub, icon+ext)
				if _, err := os.Stat(p); err == nil {
					return p
				}
			}
		}
	}
	for _, ext := range []string{".png", ".svg"} {
		p := filepath.Join("/usr/share/pixmaps", icon+ext)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}
