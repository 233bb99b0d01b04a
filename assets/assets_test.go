package assets_test

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"strings"
	"testing"

	"busmedic/assets"
	"busmedic/assets/internal/icondraw"
)

// TestUpToDate checks that the committed icons are what the generator draws
// now: after changing a shape, run go generate ./assets.
func TestUpToDate(t *testing.T) {
	for _, ic := range icondraw.Icons() {
		if got := assets.SVG(ic.Name); !bytes.Equal(got, ic.SVG()) {
			t.Errorf("icons/%s.svg is stale: run go generate ./assets", ic.Name)
		}
		if got := assets.SymbolicSVG(ic.Name); !bytes.Equal(got, ic.SymbolicSVG()) {
			t.Errorf("icons/%s-symbolic.svg is stale: run go generate ./assets", ic.Name)
		}
		for _, size := range assets.Sizes() {
			img, err := png.Decode(bytes.NewReader(assets.PNG(ic.Name, size)))
			if err != nil {
				t.Fatalf("%s-%d.png: %v", ic.Name, size, err)
			}
			// Compare pixels, not bytes: PNG compression may differ
			// between Go versions.
			want := ic.Image(size)
			if img.Bounds() != want.Bounds() {
				t.Fatalf("%s-%d.png is %v", ic.Name, size, img.Bounds())
			}
			if !samePixels(img, want) {
				t.Errorf("icons/%s-%d.png is stale: run go generate ./assets", ic.Name, size)
			}
		}
	}
}

func samePixels(a, b image.Image) bool {
	for y := a.Bounds().Min.Y; y < a.Bounds().Max.Y; y++ {
		for x := a.Bounds().Min.X; x < a.Bounds().Max.X; x++ {
			r1, g1, b1, a1 := a.At(x, y).RGBA()
			r2, g2, b2, a2 := b.At(x, y).RGBA()
			if r1 != r2 || g1 != g2 || b1 != b2 || a1 != a2 {
				return false
			}
		}
	}
	return true
}

func TestIconsDiffer(t *testing.T) {
	seen := map[string]string{}
	for _, name := range []string{assets.Healthy, assets.Recovering, assets.Attention, assets.BusDown} {
		k := string(assets.PNG(name, 22))
		if other, ok := seen[k]; ok {
			t.Errorf("%s and %s have the same 22 px icon", name, other)
		}
		seen[k] = name
	}
}

// A symbolic icon is recoloured by GTK and GNOME Shell, which force the
// fill of every rect, circle and path to the panel's colour: the one
// circle is the disc that is to take it, and the mask that cuts the glyph
// out uses none of them, or the recolouring would fill the mask too. It
// is the SVG's structure that matters, so it is checked here.
func TestSymbolic(t *testing.T) {
	for _, name := range assets.Icons() {
		svg := string(assets.SymbolicSVG(name))
		mask, rest, ok := strings.Cut(svg, "</mask>")
		if !ok || !strings.Contains(mask, `<mask id="cut"`) {
			t.Errorf("%s-symbolic.svg has no mask:\n%s", name, svg)
			continue
		}
		for _, el := range []string{"<rect", "<circle", "<path"} {
			if strings.Contains(mask, el) {
				t.Errorf("%s-symbolic.svg draws its mask with %s>, which GTK recolours", name, el)
			}
		}
		if n := strings.Count(rest, "<circle"); n != 1 || !strings.Contains(rest, `mask="url(#cut)"`) {
			t.Errorf("%s-symbolic.svg: %d circles after the mask, want the masked disc alone", name, n)
		}
		if c := strings.Count(svg, `fill="#`) - strings.Count(svg, `fill="#fff"`) - strings.Count(svg, `fill="#000"`); c != 1 {
			t.Errorf("%s-symbolic.svg paints in %d colours besides the mask's, want one", name, c)
		}
	}
	if assets.IconName(assets.Healthy) != "busmedic-healthy" {
		t.Errorf("IconName = %q", assets.IconName(assets.Healthy))
	}
}

// TestIDs: each application id names its desktop entry and its AppStream
// file, which says it; the editor's is FyneApp.toml's.
func TestIDs(t *testing.T) {
	for _, id := range []string{assets.ID, assets.EditorID} {
		if _, err := os.Stat(id + ".desktop"); err != nil {
			t.Errorf("no desktop entry for %s: %v", id, err)
		}
		meta, err := os.ReadFile(id + ".metainfo.xml")
		if err != nil {
			t.Errorf("no AppStream file for %s: %v", id, err)
			continue
		}
		for _, want := range []string{"<id>" + id + "</id>", `<launchable type="desktop-id">` + id + ".desktop</launchable>"} {
			if !strings.Contains(string(meta), want) {
				t.Errorf("%s.metainfo.xml lacks %s", id, want)
			}
		}
	}
	fyneApp, err := os.ReadFile("../FyneApp.toml")
	if err != nil {
		t.Fatal(err)
	}
	if want := `ID = "` + assets.EditorID + `"`; !strings.Contains(string(fyneApp), want) {
		t.Errorf("FyneApp.toml lacks %s", want)
	}
}

func TestDesktopEntry(t *testing.T) {
	d := string(assets.DesktopEntry())
	for _, want := range []string{"[Desktop Entry]\n", "\nType=Application\n", "\nExec=busmedic run\n"} {
		if !strings.Contains(d, want) {
			t.Errorf("%s.desktop lacks %q", assets.ID, want)
		}
	}
}
