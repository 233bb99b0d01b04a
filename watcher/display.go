package watcher

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DisplayGone reports whether the graphical session this process belongs to
// has ended: the X server of $DISPLAY no longer accepts connections, or the
// Wayland socket of $WAYLAND_DISPLAY is gone. At logout the display server
// often goes before the session bus does, so this tells a bus lost at logout
// from a bus lost by accident. With neither variable set there is no display
// to lose, and it reports false.
func DisplayGone() (gone bool, why string) {
	if wl := os.Getenv("WAYLAND_DISPLAY"); wl != "" {
		path := wl
		if !filepath.IsAbs(path) {
			path = filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), wl)
		}
		if !answers("unix", path) {
			return true, fmt.Sprintf("the Wayland display %s is gone", wl)
		}
		return false, ""
	}
	if d := os.Getenv("DISPLAY"); d != "" {
		addrs, ok := xSockets(d)
		if !ok {
			return false, "" // a remote display: we cannot tell
		}
		for _, a := range addrs {
			if answers("unix", a) {
				return false, ""
			}
		}
		return true, fmt.Sprintf("the X server of DISPLAY=%s no longer answers", d)
	}
	return false, ""
}

// xSockets returns the sockets of a local X display such as ":0" or
// "unix:1.0": the abstract one Xorg and Xvfb listen on first, then the file.
func xSockets(display string) ([]string, bool) {
	host, rest, ok := strings.Cut(display, ":")
	if !ok || (host != "" && host != "unix" && host != "localhost") {
		return nil, false
	}
	num, _, _ := strings.Cut(rest, ".")
	if num == "" {
		return nil, false
	}
	file := "/tmp/.X11-unix/X" + num
	return []string{"@" + file, file}, true
}

func answers(network, addr string) bool {
	c, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}
