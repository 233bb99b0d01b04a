// Command minimal is the floor the tray's idle cost is measured against: a
// plain fyne.io/systray program with an icon and a one-item menu.
package main

import (
	"fyne.io/systray"

	"busmedic/assets"
)

func main() {
	systray.Run(func() {
		systray.SetIcon(assets.PNG(assets.Healthy, 32))
		systray.SetTitle("minimal")
		quit := systray.AddMenuItem("Quit", "")
		go func() {
			<-quit.ClickedCh
			systray.Quit()
		}()
	}, nil)
}
