// Package icontheme finds the file of a named icon as the freedesktop.org
// Icon Theme Specification says: in the current theme, then in the themes
// it inherits, then in hicolor, then among the unthemed icons (such as
// /usr/share/pixmaps). It also tells which theme the desktop uses
// (CurrentTheme); reading the theme from XSETTINGS needs an X connection,
// which the caller brings (the rules editor has one; the daemon does not).
//
// It is pure Go, for the daemon (which must build without cgo) and the
// rules editor alike.
package icontheme

import (
	"bufio"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/adrg/xdg"
)

// Hicolor is the theme every theme falls back to.
const Hicolor = "hicolor"

// Finder looks icons up in one theme and the themes behind it. It reads
// each theme's index.theme once; it is safe for concurrent use.
type Finder struct {
	theme string
	dirs  []string
	exts  []string

	mu      sync.Mutex
	indexes map[string]*index // nil: the theme has no index.theme
}

// New returns a Finder for theme ("" means hicolor alone) that looks in the
// base directories dirs, in order (BaseDirs gives the usual ones), for files
// with the extensions exts, in order of preference (such as ".png",
// ".svg"; nil means ".png", ".svg", ".xpm", as the specification lists).
func New(theme string, dirs, exts []string) *Finder {
	if theme == "" {
		theme = Hicolor
	}
	if exts == nil {
		exts = []string{".png", ".svg", ".xpm"}
	}
	return &Finder{theme: theme, dirs: dirs, exts: exts, indexes: map[string]*index{}}
}

// Theme is the theme the Finder looks in first.
func (f *Finder) Theme() string { return f.theme }

// BaseDirs returns the directories icons and themes are looked for in, as
// the specification and GTK order them: $HOME/.icons, $XDG_DATA_HOME/icons,
// each $XDG_DATA_DIRS/icons, then /usr/share/pixmaps.
func BaseDirs() []string {
	dirs := []string{filepath.Join(xdg.Home, ".icons"), filepath.Join(xdg.DataHome, "icons")}
	for _, d := range xdg.DataDirs {
		dirs = append(dirs, filepath.Join(d, "icons"))
	}
	return append(dirs, "/usr/share/pixmaps")
}

// Find returns the file of icon name for size×size pixels at scale (1, or
// 2 on a HiDPI screen), or "" if there is none. An absolute path is
// returned as is when the file exists; a name given with an image
// extension ("firefox.png", which desktop files sometimes say) is looked up
// without it.
func (f *Finder) Find(name string, size, scale int) string {
	if name == "" {
		return ""
	}
	if filepath.IsAbs(name) {
		if isFile(name) {
			return name
		}
		return ""
	}
	if strings.ContainsRune(name, '/') {
		return "" // not a name, and not a path we can resolve
	}
	for _, ext := range []string{".png", ".svg", ".xpm"} {
		name = strings.TrimSuffix(name, ext)
	}
	if scale < 1 {
		scale = 1
	}
	seen := map[string]bool{}
	if p := f.findHelper(name, size, scale, f.theme, seen); p != "" {
		return p
	}
	if !seen[Hicolor] {
		if p := f.findHelper(name, size, scale, Hicolor, seen); p != "" {
			return p
		}
	}
	return f.fallback(name)
}

// findHelper looks in theme, then in the themes it inherits, depth first,
// each theme once.
func (f *Finder) findHelper(name string, size, scale int, theme string, seen map[string]bool) string {
	if seen[theme] {
		return ""
	}
	seen[theme] = true
	idx := f.index(theme)
	if idx == nil {
		return ""
	}
	if p := f.lookup(name, size, scale, theme, idx); p != "" {
		return p
	}
	for _, parent := range idx.inherits {
		if p := f.findHelper(name, size, scale, parent, seen); p != "" {
			return p
		}
	}
	return ""
}

// lookup is the specification's LookupIcon: a directory that matches the
// size exactly, else the file in the directory of the closest size.
func (f *Finder) lookup(name string, size, scale int, theme string, idx *index) string {
	for _, d := range idx.dirs {
		if !d.matches(size, scale) {
			continue
		}
		if p := f.inDir(theme, d.path, name); p != "" {
			return p
		}
	}
	best, bestDist := "", -1
	for _, d := range idx.dirs {
		dist := d.distance(size, scale)
		if bestDist >= 0 && dist >= bestDist {
			continue
		}
		if p := f.inDir(theme, d.path, name); p != "" {
			best, bestDist = p, dist
		}
	}
	return best
}

// inDir returns the file of name in the theme subdirectory sub of the
// first base directory that has one.
func (f *Finder) inDir(theme, sub, name string) string {
	for _, base := range f.dirs {
		for _, ext := range f.exts {
			p := filepath.Join(base, theme, sub, name+ext)
			if isFile(p) {
				return p
			}
		}
	}
	return ""
}

// fallback is the specification's LookupFallbackIcon: an icon lying in a
// base directory itself, as in /usr/share/pixmaps.
func (f *Finder) fallback(name string) string {
	for _, base := range f.dirs {
		for _, ext := range f.exts {
			p := filepath.Join(base, name+ext)
			if isFile(p) {
				return p
			}
		}
	}
	return ""
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// index is what Find uses of a theme's index.theme.
type index struct {
	inherits []string
	dirs     []dir
}

// dir is one icon directory of a theme, with its size as index.theme
// describes it.
type dir struct {
	path                                     string
	size, scale, minSize, maxSize, threshold int
	kind                                     string // Fixed, Scalable or Threshold
}

// matches is the specification's DirectoryMatchesSize.
func (d dir) matches(size, scale int) bool {
	if d.scale != scale {
		return false
	}
	switch d.kind {
	case "Fixed":
		return d.size == size
	case "Scalable":
		return d.minSize <= size && size <= d.maxSize
	default: // Threshold
		return d.size-d.threshold <= size && size <= d.size+d.threshold
	}
}

// distance is the specification's DirectorySizeDistance, in device pixels.
// For Threshold directories it measures from the ends of the threshold
// range, as GTK does (the specification's pseudo-code reads MinSize and
// MaxSize there, which such directories do not have).
func (d dir) distance(size, scale int) int {
	want := size * scale
	lo, hi := d.size*d.scale, d.size*d.scale
	switch d.kind {
	case "Scalable":
		lo, hi = d.minSize*d.scale, d.maxSize*d.scale
	case "Threshold":
		lo, hi = (d.size-d.threshold)*d.scale, (d.size+d.threshold)*d.scale
	}
	switch {
	case want < lo:
		return lo - want
	case want > hi:
		return want - hi
	}
	return 0
}

// index returns theme's index, read from the first base directory that has
// the theme's index.theme; nil if none has.
func (f *Finder) index(theme string) *index {
	f.mu.Lock()
	defer f.mu.Unlock()
	if idx, ok := f.indexes[theme]; ok {
		return idx
	}
	var idx *index
	for _, base := range f.dirs {
		if i, err := readIndex(filepath.Join(base, theme, "index.theme")); err == nil {
			idx = i
			break
		}
	}
	f.indexes[theme] = idx
	return idx
}

// readIndex reads an index.theme: the [Icon Theme] group's Inherits,
// Directories and ScaledDirectories, and each directory's group.
func readIndex(path string) (*index, error) {
	groups, err := readGroups(path)
	if err != nil {
		return nil, err
	}
	head := groups["Icon Theme"]
	idx := &index{inherits: splitList(head["Inherits"])}
	names := append(splitList(head["Directories"]), splitList(head["ScaledDirectories"])...)
	seen := map[string]bool{}
	for _, name := range names {
		g, ok := groups[name]
		if !ok || seen[name] {
			continue // the specification requires a group per directory
		}
		seen[name] = true
		d := dir{path: name, kind: g["Type"], size: atoi(g["Size"], 0), scale: atoi(g["Scale"], 1), threshold: atoi(g["Threshold"], 2)}
		if d.size <= 0 {
			continue
		}
		if !slices.Contains([]string{"Fixed", "Scalable", "Threshold"}, d.kind) {
			d.kind = "Threshold"
		}
		d.minSize, d.maxSize = atoi(g["MinSize"], d.size), atoi(g["MaxSize"], d.size)
		idx.dirs = append(idx.dirs, d)
	}
	return idx, nil
}

// readGroups reads a file of the desktop entry format into its groups of
// keys; the first of a group or key wins, comments and blank lines are
// skipped.
func readGroups(path string) (map[string]map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	groups := map[string]map[string]string{}
	var cur map[string]string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#':
		case line[0] == '[' && line[len(line)-1] == ']':
			name := line[1 : len(line)-1]
			if groups[name] == nil {
				groups[name] = map[string]string{}
				cur = groups[name]
			} else {
				cur = nil // a repeated group: the first one counts
			}
		case cur != nil:
			k, v, ok := strings.Cut(line, "=")
			k = strings.TrimSpace(k)
			if _, dup := cur[k]; ok && !dup {
				cur[k] = strings.TrimSpace(v)
			}
		}
	}
	return groups, sc.Err()
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func atoi(s string, def int) int {
	if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
		return n
	}
	return def
}
