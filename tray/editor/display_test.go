package editor

import (
	"bufio"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"busmedic/watcher/bustest"
)

// xsSetting is one setting for xsettingsData.
type xsSetting struct {
	kind  byte
	name  string
	value any // int32, string or [4]uint16
}

type byteOrder interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

// xsettingsData encodes settings as an XSETTINGS manager puts them in its
// _XSETTINGS_SETTINGS property.
func xsettingsData(order byteOrder, settings ...xsSetting) []byte {
	var b []byte
	pad := func() {
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	first := byte(0)
	if order == binary.BigEndian {
		first = 1
	}
	b = append(b, first, 0, 0, 0)
	b = order.AppendUint32(b, 7) // serial
	b = order.AppendUint32(b, uint32(len(settings)))
	for _, s := range settings {
		b = append(b, s.kind, 0)
		b = order.AppendUint16(b, uint16(len(s.name)))
		b = append(b, s.name...)
		pad()
		b = order.AppendUint32(b, 3) // last-change serial
		switch v := s.value.(type) {
		case int32:
			b = order.AppendUint32(b, uint32(v))
		case string:
			b = order.AppendUint32(b, uint32(len(v)))
			b = append(b, v...)
			pad()
		case [4]uint16:
			for _, c := range v {
				b = order.AppendUint16(b, c)
			}
		}
	}
	return b
}

func TestXSettingsString(t *testing.T) {
	settings := []xsSetting{
		{xsInt, "Xft/DPI", int32(98304)},
		{xsColor, "Gtk/Color", [4]uint16{1, 2, 3, 4}},
		{xsString, "Net/ThemeName", "Adwaita-dark"},
		{xsString, "Net/IconThemeName", "Papirus"},
	}
	for _, order := range []byteOrder{binary.LittleEndian, binary.BigEndian} {
		data := xsettingsData(order, settings...)
		if got, ok := xsettingsString(data, "Net/IconThemeName"); !ok || got != "Papirus" {
			t.Errorf("%v: Net/IconThemeName = %q, %v", order, got, ok)
		}
		if got, ok := xsettingsString(data, "Net/ThemeName"); !ok || got != "Adwaita-dark" {
			t.Errorf("%v: Net/ThemeName = %q, %v", order, got, ok)
		}
		if _, ok := xsettingsString(data, "Net/CursorThemeName"); ok {
			t.Errorf("%v: a setting that is not there was found", order)
		}
		if _, ok := xsettingsString(data, "Xft/DPI"); ok {
			t.Errorf("%v: an integer setting was read as a string", order)
		}
		// Cut anywhere, the data is refused, never read past its end.
		for n := range len(data) - 1 {
			if got, ok := xsettingsString(data[:n], "Net/IconThemeName"); ok {
				t.Errorf("%v: cut at %d of %d: %q", order, n, len(data), got)
			}
		}
	}
	bad := xsettingsData(binary.LittleEndian, xsSetting{9, "Odd/Type", int32(1)}, settings[3])
	if _, ok := xsettingsString(bad, "Net/IconThemeName"); ok {
		t.Error("a setting of an unknown type was skipped over")
	}
	wrongOrder := xsettingsData(binary.LittleEndian, settings...)
	wrongOrder[0] = 2
	if _, ok := xsettingsString(wrongOrder, "Net/IconThemeName"); ok {
		t.Error("an unknown byte order was read")
	}
	huge := xsettingsData(binary.LittleEndian, settings[3])
	binary.LittleEndian.PutUint32(huge[len(huge)-12:], 1<<31) // the value's length
	if _, ok := xsettingsString(huge, "Net/IconThemeName"); ok {
		t.Error("a length past the end was read")
	}
}

// TestOpenDisplay: on a real X server (Xvfb), the icon theme comes from
// the XSETTINGS manager (the real xsettingsd) when one runs; without a
// server, or without DISPLAY, openDisplay says so.
func TestOpenDisplay(t *testing.T) {
	x := bustest.StartXvfb(t, 640, 480)
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	d, err := openDisplay(env("DISPLAY", x.Name))
	if err != nil || d.iconTheme != "" {
		t.Fatalf("without a settings manager: %+v, %v", d, err)
	}

	startXSettingsd(t, x.Name, "Net/IconThemeName \"Busmedic Test\"\nNet/ThemeName \"Adwaita\"\nXft/DPI 98304\n")
	d, err = openDisplay(env("DISPLAY", x.Name))
	if err != nil || d.iconTheme != "Busmedic Test" {
		t.Errorf("with xsettingsd: %+v, %v; want the icon theme Busmedic Test", d, err)
	}

	if _, err := openDisplay(env()); !errors.Is(err, ErrNoDisplay) {
		t.Errorf("without DISPLAY: %v, want ErrNoDisplay", err)
	}
	x.Stop()
	if _, err := openDisplay(env("DISPLAY", x.Name)); err == nil || !strings.Contains(err.Error(), "cannot open display "+x.Name) {
		t.Errorf("with the X server gone: %v", err)
	}
}

// startXSettingsd runs xsettingsd with the settings conf on display until
// the test ends, and returns once it owns the XSETTINGS selection (it
// says so on stderr).
func startXSettingsd(t *testing.T, display, conf string) {
	t.Helper()
	bin, err := exec.LookPath("xsettingsd")
	if err != nil {
		t.Fatalf("xsettingsd not found (%v); install it: apt-get install -y xsettingsd", err)
	}
	path := filepath.Join(t.TempDir(), "xsettingsd.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", path)
	cmd.Env = append(os.Environ(), "DISPLAY="+display)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	owned := make(chan struct{})
	done := make(chan struct{})
	var said strings.Builder
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			said.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "xsettingsd: Took ownership of selection") {
				close(owned)
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-done
		cmd.Wait()
	})
	select {
	case <-owned:
	case <-done:
		cmd.Wait()
		t.Fatalf("xsettingsd exited: %s", said.String())
	case <-time.After(deadline):
		t.Fatalf("xsettingsd did not take the XSETTINGS selection within %s", deadline)
	}
}
