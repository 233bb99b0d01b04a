//go:build wayland

package editor

// openDisplay, in a build for Wayland (-tags wayland, Fyne's Wayland
// backend), checks only that there is a compositor to talk to; the icon
// theme then comes from gsettings, as there is no XSETTINGS.
func openDisplay(getenv func(string) string) (display, error) {
	if getenv("WAYLAND_DISPLAY") == "" {
		return display{}, ErrNoDisplay
	}
	return display{}, nil
}
