package editor

import (
	"flag"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/theme"

	"busmedic/watcher"
)

var update = flag.Bool("update", false, "rewrite the screenshots in docs/")

// TestScreenshots renders the window with Fyne's software painter: the
// list with a rule's plan, and a new rule with errors at their fields.
// With -update it writes them to docs/editor-list.png and
// docs/editor-form.png.
func TestScreenshots(t *testing.T) {
	sock := serve(t, newBackend())
	f := newFixture(t, fixtureOpts{user: userRules, control: sock, system: `[[app]]
id = "nm-applet"
name = "Network applet"
bus = "system"
names = ["org.freedesktop.network-manager-applet"]
exec = ["nm-applet", "--indicator"]
after = ["org.freedesktop.NetworkManager"]

[[app]]
id = "blueman"
name = "Bluetooth applet"
cmdline = "*/blueman-applet*"
action = "notify"
`})
	f.q.waitFor(t, "the daemon's status", func() bool { return f.ed.status != nil })
	fyne.CurrentApp().Settings().SetTheme(theme.DefaultTheme())
	ed := f.ed
	ed.win.Resize(fyne.NewSize(1100, 720))

	f.selectRule(t, "dunst")
	ed.showPlan()
	f.q.waitFor(t, "the plan", func() bool { return strings.Contains(ed.tryText.Text, "restarted now") })
	save(t, "editor-list.png", capture(ed.win))

	ed.AddFromPeer("session", watcher.Peer{PID: 1234, UID: os.Getuid(), Exe: "/usr/bin/nm-applet",
		Argv: []string{"nm-applet", "--indicator"}, Names: []string{"org.freedesktop.network-manager-applet"}, Cwd: "/home/ada"})
	ed.form.id.SetText("NM applet")
	ed.form.names.rows[0].SetText("network-manager-applet")
	if !ed.saveBtn.Disabled() {
		t.Fatal("Save enabled with errors")
	}
	save(t, "editor-form.png", capture(ed.win))
}

// capture lays the window out again before painting it: the test canvas,
// unlike the GL one, does not re-lay out containers whose children were
// shown or hidden. Changing every width does.
func capture(w fyne.Window) image.Image {
	size := w.Canvas().Size()
	w.Resize(size.AddWidthHeight(1, 1))
	w.Resize(size)
	return w.Canvas().Capture()
}

func save(t *testing.T, name string, img image.Image) {
	t.Helper()
	if b := img.Bounds(); b.Dx() < 100 || b.Dy() < 100 {
		t.Fatalf("%s: capture is %v", name, b)
	}
	if !*update {
		return
	}
	path := filepath.Join("..", "..", "docs", name)
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if err := png.Encode(out, img); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", path)
}
