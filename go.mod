module busmedic

go 1.26.0

require (
	github.com/adrg/xdg v0.5.3
	github.com/coreos/go-systemd/v22 v22.7.0
	github.com/fsnotify/fsnotify v1.10.1
	github.com/godbus/dbus/v5 v5.2.4
	github.com/pelletier/go-toml/v2 v2.4.3
	github.com/prometheus/procfs v0.23.0
	golang.org/x/sys v0.49.0
)

require fyne.io/systray v1.12.2
