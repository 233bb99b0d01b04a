package icontheme

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestGVariantString(t *testing.T) {
	for in, want := range map[string]string{
		"'Adwaita'":        "Adwaita",
		`"it's"`:           "it's",
		`'a\'b'`:           "a'b",
		`'back\\slash'`:    `back\slash`,
		"''":               "",
		"Adwaita":          "",
		"'unterminated":    "",
		"@ms nothing":      "",
		"'":                "",
		"'Papirus-Dark'  ": "",
	} {
		if got := gvariantString(in); got != want {
			t.Errorf("gvariantString(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCurrentTheme: XSETTINGS first, then GNOME's setting through the real
// gsettings (with GLib's keyfile backend in a temporary config directory),
// then hicolor when gsettings is not there.
func TestCurrentTheme(t *testing.T) {
	ctx := context.Background()
	if theme, from := CurrentTheme(ctx, "Papirus"); theme != "Papirus" || from != FromXSettings {
		t.Errorf("with XSETTINGS: %q from %s", theme, from)
	}

	t.Run("gsettings", func(t *testing.T) {
		if _, err := exec.LookPath("gsettings"); err != nil {
			t.Fatalf("gsettings not found (%v); install it: apt-get install -y libglib2.0-bin gsettings-desktop-schemas", err)
		}
		if out, err := exec.Command("gsettings", "list-keys", "org.gnome.desktop.interface").CombinedOutput(); err != nil {
			t.Fatalf("GNOME's interface schema is missing (%v: %s); install it: apt-get install -y gsettings-desktop-schemas", err, out)
		}
		config := t.TempDir()
		t.Setenv("XDG_CONFIG_HOME", config)
		t.Setenv("GSETTINGS_BACKEND", "keyfile")
		write(t, filepath.Join(config, "glib-2.0/settings/keyfile"), "[org/gnome/desktop/interface]\nicon-theme='Busmedic Test'\n")
		if theme, from := CurrentTheme(ctx, ""); theme != "Busmedic Test" || from != FromGSettings {
			t.Errorf("from gsettings: %q from %s", theme, from)
		}
	})

	t.Run("neither", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		if theme, from := CurrentTheme(ctx, ""); theme != Hicolor || from != FromDefault {
			t.Errorf("without XSETTINGS and gsettings: %q from %s", theme, from)
		}
	})
}
