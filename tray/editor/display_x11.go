//go:build !wayland

package editor

/*
#cgo LDFLAGS: -lX11
#include <stdio.h>
#include <stdlib.h>
#include <X11/Xlib.h>

static int busmedic_ignore_error(Display *d, XErrorEvent *e) { return 0; }

// busmedic_xsettings returns the _XSETTINGS_SETTINGS property of the
// screen's XSETTINGS manager (free it with XFree), or NULL when there is
// no manager. The manager may go away between the two requests: the
// BadWindow that follows is ignored rather than ending the program, which
// is what Xlib's default handler does.
static unsigned char *busmedic_xsettings(Display *d, unsigned long *len) {
	char name[32];
	snprintf(name, sizeof name, "_XSETTINGS_S%d", DefaultScreen(d));
	Window owner = XGetSelectionOwner(d, XInternAtom(d, name, False));
	if (owner == None)
		return NULL;
	Atom prop = XInternAtom(d, "_XSETTINGS_SETTINGS", False);
	Atom type = None;
	int format = 0;
	unsigned long n = 0, after = 0;
	unsigned char *data = NULL;
	XErrorHandler old = XSetErrorHandler(busmedic_ignore_error);
	int st = XGetWindowProperty(d, owner, prop, 0, 1 << 20, False, prop, &type, &format, &n, &after, &data);
	XSync(d, False);
	XSetErrorHandler(old);
	if (st != Success || type != prop || format != 8 || data == NULL) {
		if (data != NULL)
			XFree(data);
		return NULL;
	}
	*len = n;
	return data;
}
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// openDisplay checks that the X display named by DISPLAY (the editor is an
// X11 program: on Wayland it runs through Xwayland) can be opened, and
// reads the icon theme from its XSETTINGS manager. It runs before Fyne
// starts: GLFW panics on a display it cannot open.
func openDisplay(getenv func(string) string) (display, error) {
	name := getenv("DISPLAY")
	if name == "" {
		if getenv("WAYLAND_DISPLAY") != "" {
			return display{}, fmt.Errorf("busmedic rules needs an X display, and DISPLAY is not set (on Wayland, Xwayland gives one)")
		}
		return display{}, ErrNoDisplay
	}
	// Xlib asks for this before any other call in a program whose threads
	// use it (GLFW's will); it may be called again.
	C.XInitThreads()
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	d := C.XOpenDisplay(cname)
	if d == nil {
		return display{}, fmt.Errorf("busmedic rules cannot open display %s: no X server answers there, or it does not let this user in", name)
	}
	defer C.XCloseDisplay(d)
	var out display
	var n C.ulong
	if data := C.busmedic_xsettings(d, &n); data != nil {
		b := C.GoBytes(unsafe.Pointer(data), C.int(n))
		C.XFree(unsafe.Pointer(data))
		out.iconTheme, _ = xsettingsString(b, "Net/IconThemeName")
	}
	return out, nil
}
