package tray_test

import (
	"fmt"
	"os/exec"

	"busmedic/tray"
)

// The editor is opened with the daemon's control socket; without it, the
// caller says how to do without.
func ExampleFindEditor() {
	editor, err := tray.FindEditor()
	if err != nil {
		fmt.Println("the rules editor is not installed; see: busmedic rules path")
		return
	}
	if err := exec.Command(editor, "-control", "/run/user/1000/busmedic/control.sock").Start(); err != nil {
		fmt.Println(err)
	}
}
