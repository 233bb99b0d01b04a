// Command pair is the floor of busmedic's process shape, for the idle
// benchmark: run without arguments it is a daemon that does nothing but hold
// a private connection to each bus and a listening unix socket, and keeps a
// child of its own binary running that is the minimal fyne.io/systray
// program. What busmedic costs beyond this pair is its own; what the pair
// costs beyond one minimal program is the price of two processes.
package main

import (
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"fyne.io/systray"
	"github.com/godbus/dbus/v5"

	"busmedic/assets"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "tray" {
		tray()
		return
	}
	for _, connect := range []func(...dbus.ConnOption) (*dbus.Conn, error){dbus.ConnectSessionBus, dbus.ConnectSystemBus} {
		conn, err := connect()
		if err != nil {
			fatal(err)
		}
		defer conn.Close()
	}
	l, err := net.Listen("unix", filepath.Join(os.Getenv("XDG_RUNTIME_DIR"), "pair.sock"))
	if err != nil {
		fatal(err)
	}
	defer l.Close()
	child := exec.Command(os.Args[0], "tray")
	if err := child.Start(); err != nil {
		fatal(err)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	child.Process.Kill()
	child.Wait()
}

func tray() {
	systray.Run(func() {
		systray.SetIcon(assets.PNG(assets.Healthy, 32))
		systray.SetTitle("pair")
		quit := systray.AddMenuItem("Quit", "")
		go func() {
			<-quit.ClickedCh
			systray.Quit()
		}()
	}, nil)
}

func fatal(err error) {
	os.Stderr.WriteString("pair: " + err.Error() + "\n")
	os.Exit(1)
}
