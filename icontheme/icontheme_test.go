package icontheme

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/adrg/xdg"
)

// write creates the file at path with text, and its directories.
func write(t *testing.T, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// themeTree lays out icon themes the way a system has them, in two base
// directories (the user's and the system's) and a pixmaps directory, and
// returns those three.
//
//	Child   (user)   inherits Parent; Fixed 16 and 48, Threshold 32±2, 24@2
//	Parent  (system) inherits Loop
//	Loop    (system) inherits Parent: a cycle
//	hicolor (both)   Fixed 48, Scalable 8–512
func themeTree(t *testing.T) (user, system, pixmaps string) {
	root := t.TempDir()
	user, system, pixmaps = filepath.Join(root, "home/icons"), filepath.Join(root, "usr/icons"), filepath.Join(root, "pixmaps")
	write(t, filepath.Join(user, "Child/index.theme"), `[Icon Theme]
Name=Child
# comment
Inherits=Parent
Directories=16x16/apps,48x48/apps,32x32/apps,nosection/apps
ScaledDirectories=24x24@2/apps

[16x16/apps]
Size=16
Type=Fixed

[48x48/apps]
Size=48
Type=Fixed

[32x32/apps]
Size=32
Type=Threshold

[24x24@2/apps]
Size=24
Scale=2
Type=Fixed
`)
	for _, f := range []string{"16x16/apps/both.png", "48x48/apps/both.png", "16x16/apps/small.png",
		"48x48/apps/shared.png", "32x32/apps/thirty.png", "24x24@2/apps/hidpi.png", "48x48/apps/hidpi.png",
		"48x48/apps/svgonly.svg", "nosection/apps/stray.png"} {
		write(t, filepath.Join(user, "Child", f), "png")
	}
	write(t, filepath.Join(system, "Parent/index.theme"), "[Icon Theme]\nName=Parent\nInherits=Loop\nDirectories=48x48/apps\n\n[48x48/apps]\nSize=48\nType=Fixed\n")
	write(t, filepath.Join(system, "Parent/48x48/apps/from-parent.png"), "png")
	write(t, filepath.Join(system, "Parent/48x48/apps/shared.png"), "png")
	write(t, filepath.Join(system, "Loop/index.theme"), "[Icon Theme]\nName=Loop\nInherits=Parent\nDirectories=48x48/apps\n\n[48x48/apps]\nSize=48\n")
	write(t, filepath.Join(system, "Loop/48x48/apps/from-loop.png"), "png")
	hicolor := "[Icon Theme]\nName=Hicolor\nDirectories=48x48/apps,scalable/apps\n\n[48x48/apps]\nSize=48\nType=Fixed\n\n" +
		"[scalable/apps]\nSize=128\nMinSize=8\nMaxSize=512\nType=Scalable\n"
	write(t, filepath.Join(system, "hicolor/index.theme"), hicolor)
	write(t, filepath.Join(system, "hicolor/scalable/apps/from-hicolor.svg"), "<svg/>")
	write(t, filepath.Join(system, "hicolor/48x48/apps/user-wins.png"), "png")
	// The user's hicolor has icons but no index.theme: the system's
	// index describes it.
	write(t, filepath.Join(user, "hicolor/48x48/apps/user-wins.png"), "png")
	write(t, filepath.Join(pixmaps, "legacy.png"), "png")
	write(t, filepath.Join(pixmaps, "old.xpm"), "xpm")
	return user, system, pixmaps
}

func TestFind(t *testing.T) {
	user, system, pixmaps := themeTree(t)
	dirs := []string{user, system, pixmaps}
	child := New("Child", dirs, []string{".png", ".svg"})
	abs := filepath.Join(pixmaps, "legacy.png")
	for _, tc := range []struct {
		name        string
		icon        string
		size, scale int
		want        string // relative to the tree's root, or ""
	}{
		{"exact size", "both", 16, 1, "home/icons/Child/16x16/apps/both.png"},
		{"exact size 48", "both", 48, 1, "home/icons/Child/48x48/apps/both.png"},
		{"closest size", "both", 40, 1, "home/icons/Child/48x48/apps/both.png"},
		{"closest size down", "both", 20, 1, "home/icons/Child/16x16/apps/both.png"},
		{"only another size", "small", 48, 1, "home/icons/Child/16x16/apps/small.png"},
		{"threshold", "thirty", 34, 1, "home/icons/Child/32x32/apps/thirty.png"},
		{"scale 2", "hidpi", 24, 2, "home/icons/Child/24x24@2/apps/hidpi.png"},
		{"scale 1", "hidpi", 48, 1, "home/icons/Child/48x48/apps/hidpi.png"},
		{"svg", "svgonly", 48, 1, "home/icons/Child/48x48/apps/svgonly.svg"},
		{"theme before its parent", "shared", 48, 1, "home/icons/Child/48x48/apps/shared.png"},
		{"inherited", "from-parent", 48, 1, "usr/icons/Parent/48x48/apps/from-parent.png"},
		{"inherited twice, through a cycle", "from-loop", 48, 1, "usr/icons/Loop/48x48/apps/from-loop.png"},
		{"hicolor last", "from-hicolor", 48, 1, "usr/icons/hicolor/scalable/apps/from-hicolor.svg"},
		{"the user's base directory first", "user-wins", 48, 1, "home/icons/hicolor/48x48/apps/user-wins.png"},
		{"pixmaps", "legacy", 48, 1, "pixmaps/legacy.png"},
		{"name with an extension", "legacy.png", 48, 1, "pixmaps/legacy.png"},
		{"extension not asked for", "old", 48, 1, ""},
		{"directory without a section", "stray", 48, 1, ""},
		{"absolute path", abs, 48, 1, "pixmaps/legacy.png"},
		{"absolute path missing", filepath.Join(pixmaps, "nope.png"), 48, 1, ""},
		{"relative path", "apps/legacy", 48, 1, ""},
		{"missing", "nope", 48, 1, ""},
		{"empty", "", 48, 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := child.Find(tc.icon, tc.size, tc.scale)
			want := ""
			if tc.want != "" {
				want = filepath.Join(filepath.Dir(filepath.Dir(user)), tc.want)
			}
			if got != want {
				t.Errorf("Find(%q, %d, %d) = %q, want %q", tc.icon, tc.size, tc.scale, got, want)
			}
		})
	}
}

func TestFindOtherThemes(t *testing.T) {
	user, system, pixmaps := themeTree(t)
	dirs := []string{user, system, pixmaps}
	root := filepath.Dir(filepath.Dir(user))
	for _, tc := range []struct {
		theme, icon, want string
	}{
		{"", "from-hicolor", "usr/icons/hicolor/scalable/apps/from-hicolor.svg"},
		{"", "both", ""}, // Child's icons are not hicolor's
		{"NoSuchTheme", "from-hicolor", "usr/icons/hicolor/scalable/apps/from-hicolor.svg"},
		{"Parent", "shared", "usr/icons/Parent/48x48/apps/shared.png"},
		{"Parent", "legacy", "pixmaps/legacy.png"},
	} {
		f := New(tc.theme, dirs, nil)
		want := ""
		if tc.want != "" {
			want = filepath.Join(root, tc.want)
		}
		if got := f.Find(tc.icon, 48, 1); got != want {
			t.Errorf("theme %q: Find(%q) = %q, want %q", tc.theme, tc.icon, got, want)
		}
	}
	if f := New("", dirs, nil); f.Theme() != Hicolor || f.Find("old", 48, 1) != filepath.Join(pixmaps, "old.xpm") {
		t.Errorf("default theme %q, or .xpm not found with the default extensions", f.Theme())
	}
}

// TestBaseDirs: the base directories follow $HOME and the XDG variables.
func TestBaseDirs(t *testing.T) {
	root := t.TempDir()
	t.Setenv("HOME", filepath.Join(root, "home"))
	t.Setenv("XDG_DATA_HOME", filepath.Join(root, "data"))
	t.Setenv("XDG_DATA_DIRS", filepath.Join(root, "a")+":"+filepath.Join(root, "b"))
	xdg.Reload()
	t.Cleanup(xdg.Reload)
	want := []string{filepath.Join(root, "home/.icons"), filepath.Join(root, "data/icons"), filepath.Join(root, "a/icons"),
		filepath.Join(root, "b/icons"), "/usr/share/pixmaps"}
	if got := BaseDirs(); !slices.Equal(got, want) {
		t.Errorf("BaseDirs() = %q, want %q", got, want)
	}
}

func TestDistance(t *testing.T) {
	for _, tc := range []struct {
		d           dir
		size, scale int
		match       bool
		dist        int
	}{
		{dir{kind: "Fixed", size: 48, scale: 1}, 48, 1, true, 0},
		{dir{kind: "Fixed", size: 48, scale: 1}, 32, 1, false, 16},
		{dir{kind: "Fixed", size: 48, scale: 1}, 24, 2, false, 0},
		{dir{kind: "Fixed", size: 24, scale: 2}, 48, 1, false, 0},
		{dir{kind: "Scalable", size: 128, minSize: 8, maxSize: 512, scale: 1}, 600, 1, false, 88},
		{dir{kind: "Scalable", size: 128, minSize: 8, maxSize: 512, scale: 1}, 4, 1, false, 4},
		{dir{kind: "Scalable", size: 128, minSize: 8, maxSize: 512, scale: 1}, 64, 1, true, 0},
		{dir{kind: "Threshold", size: 32, threshold: 2, scale: 1}, 30, 1, true, 0},
		{dir{kind: "Threshold", size: 32, threshold: 2, scale: 1}, 36, 1, false, 2},
		{dir{kind: "Threshold", size: 32, threshold: 2, scale: 1}, 20, 1, false, 10},
	} {
		if m, d := tc.d.matches(tc.size, tc.scale), tc.d.distance(tc.size, tc.scale); m != tc.match || d != tc.dist {
			t.Errorf("%+v at %d@%d: matches %v, distance %d; want %v, %d", tc.d, tc.size, tc.scale, m, d, tc.match, tc.dist)
		}
	}
}
