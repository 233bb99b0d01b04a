package editor

import (
	"encoding/binary"
	"errors"
)

// ErrNoDisplay: the editor was started outside a graphical session, as
// from a text console or over ssh without X forwarding.
var ErrNoDisplay = errors.New("busmedic rules needs a graphical session (DISPLAY or WAYLAND_DISPLAY is not set)")

// display is what the editor learns from the display before it opens its
// window.
type display struct {
	// iconTheme is the XSETTINGS Net/IconThemeName, "" if the display
	// has no settings manager or it names none.
	iconTheme string
}

// XSETTINGS setting types (the "XSETTINGS Specification", freedesktop.org).
const (
	xsInt    = 0
	xsString = 1
	xsColor  = 2
)

// xsettingsString returns the string setting name from the value of an
// _XSETTINGS_SETTINGS property; false if it is not there or the value is
// malformed.
func xsettingsString(data []byte, name string) (string, bool) {
	if len(data) < 12 {
		return "", false
	}
	var order binary.ByteOrder = binary.LittleEndian
	switch data[0] {
	case 0: // LSBFirst
	case 1: // MSBFirst
		order = binary.BigEndian
	default:
		return "", false
	}
	n := order.Uint32(data[8:12])
	p := data[12:]
	// take cuts k bytes off p, padded to 4, and returns them.
	take := func(k int) ([]byte, bool) {
		padded := (k + 3) &^ 3
		if k < 0 || padded > len(p) {
			return nil, false
		}
		v := p[:k]
		p = p[padded:]
		return v, true
	}
	for range n {
		head, ok := take(4)
		if !ok {
			return "", false
		}
		kind, nameLen := head[0], int(order.Uint16(head[2:4]))
		key, ok := take(nameLen)
		if !ok {
			return "", false
		}
		if _, ok := take(4); !ok { // last-change serial
			return "", false
		}
		switch kind {
		case xsInt:
			if _, ok := take(4); !ok {
				return "", false
			}
		case xsString:
			l, ok := take(4)
			if !ok {
				return "", false
			}
			v, ok := take(int(order.Uint32(l)))
			if !ok {
				return "", false
			}
			if string(key) == name {
				return string(v), true
			}
		case xsColor:
			if _, ok := take(8); !ok {
				return "", false
			}
		default:
			return "", false
		}
	}
	return "", false
}
