package icontheme

import (
	"context"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Where CurrentTheme found the theme.
const (
	FromXSettings = "xsettings"
	FromGSettings = "gsettings"
	FromDefault   = "default"
)

// gsettingsTimeout bounds the gsettings call: it reads a file, but a
// broken GIO module must not hold the caller up.
const gsettingsTimeout = 3 * time.Second

// CurrentTheme returns the icon theme the desktop uses, and where it was
// found: xsettings, the Net/IconThemeName that the caller read from the
// display's XSETTINGS manager (GNOME's gsd-xsettings, xfsettingsd,
// xsettingsd, KDE's), when not ""; else GNOME's setting
// (org.gnome.desktop.interface icon-theme) where gsettings and the schema
// are installed; else hicolor.
func CurrentTheme(ctx context.Context, xsettings string) (theme, from string) {
	if xsettings != "" {
		return xsettings, FromXSettings
	}
	if t := gsettingsTheme(ctx); t != "" {
		return t, FromGSettings
	}
	return Hicolor, FromDefault
}

// gsettingsTheme asks gsettings for GNOME's icon theme; "" when gsettings
// or the schema is missing, or the call fails.
func gsettingsTheme(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, gsettingsTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "gsettings", "get", "org.gnome.desktop.interface", "icon-theme")
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = time.Second
	out, err := cmd.Output() // stderr (GLib's warnings) is dropped
	if err != nil {
		return ""
	}
	return gvariantString(strings.TrimSpace(string(out)))
}

// gvariantString reads a GVariant string in its text form ('Adwaita', or
// "it's" when it holds a single quote), or returns "".
func gvariantString(s string) string {
	if len(s) < 2 || s[0] != s[len(s)-1] || (s[0] != '\'' && s[0] != '"') {
		return ""
	}
	var b strings.Builder
	esc := false
	for _, c := range s[1 : len(s)-1] {
		if !esc && c == '\\' {
			esc = true
			continue
		}
		esc = false
		b.WriteRune(c)
	}
	return b.String()
}
