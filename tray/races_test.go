package tray

import (
	"strings"
	"testing"
)

// systrayRace is the race detector's report of stock systray's own race
// (its menu version), as a tray child printed it.
const systrayRace = `time=2026-11-30T16:12:21.037Z level=WARN msg="tray action failed"
==================
WARNING: DATA RACE
Write at 0x000000df1b38 by goroutine 47:
  fyne.io/systray.refresh()
      /root/go/pkg/mod/fyne.io/systray@v1.12.2/systray_menu_unix.go:423 +0x19e
  fyne.io/systray.(*tray).GetLayout.func1()
      /root/go/pkg/mod/fyne.io/systray@v1.12.2/systray_menu_unix.go:87 +0x29

Previous read at 0x000000df1b38 by goroutine 73:
  fyne.io/systray.(*tray).GetLayout()
      /root/go/pkg/mod/fyne.io/systray@v1.12.2/systray_menu_unix.go:91 +0x1d6
  runtime.call32()
      /usr/local/go/src/runtime/asm_amd64.s:836 +0x39

Goroutine 47 (running) created at:
  fyne.io/systray.(*tray).GetLayout()
      /root/go/pkg/mod/fyne.io/systray@v1.12.2/systray_menu_unix.go:85 +0x15a
==================
time=2026-11-30T16:12:21.074Z level=INFO msg="tray state"
`

// A race within systray alone is upstream's; one that code of ours takes
// part in, or one the counting cannot read, is ours.
func TestRaces(t *testing.T) {
	ours := strings.Replace(systrayRace, "  fyne.io/systray.(*tray).GetLayout()\n      /root/go/pkg/mod/fyne.io/systray@v1.12.2/systray_menu_unix.go:91",
		"  busmedic/tray.(*view).render()\n      /src/busmedic/tray/view.go:91", 1)
	unreadable := "==================\nWARNING: DATA RACE\nsomething else\n==================\n"
	for _, tc := range []struct {
		name           string
		stderr         string
		ours, upstream int
	}{
		{"none", "time=... level=INFO msg=\"tray started\"\n", 0, 0},
		{"systray's own", systrayRace, 0, 1},
		{"ours", ours, 1, 0},
		{"both", systrayRace + ours, 1, 1},
		{"unreadable", unreadable, 1, 0},
	} {
		if o, u := races(tc.stderr); o != tc.ours || u != tc.upstream {
			t.Errorf("%s: races = %d ours, %d upstream; want %d, %d", tc.name, o, u, tc.ours, tc.upstream)
		}
	}
}
