package bustest

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Display is an Xvfb X server run by a test.
type Display struct {
	// Name is the DISPLAY value, such as ":7".
	Name   string
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartXvfb starts an Xvfb server of width x height pixels for the test and
// stops it when the test ends. Xvfb picks a free display itself and says
// which once it accepts clients (-displayfd), so there is neither a race on
// the number nor a wait by time. If Xvfb is missing the test fails with the
// install line.
func StartXvfb(t testing.TB, width, height int) *Display {
	t.Helper()
	xvfb, err := exec.LookPath("Xvfb")
	if err != nil {
		t.Fatalf("bustest: Xvfb not found (%v); install it: apt-get install -y xvfb", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatalf("bustest: %v", err)
	}
	defer r.Close()
	screen := fmt.Sprintf("%dx%dx24", width, height)
	// -noreset: a desktop's X server lives on when its last client goes,
	// as when a bus restart takes every app with it; a reset would make
	// an app that connects meanwhile fail.
	cmd := exec.Command(xvfb, "-displayfd", "3", "-nolisten", "tcp", "-noreset", "-screen", "0", screen)
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("bustest: start Xvfb: %v", err)
	}
	w.Close()
	d := &Display{cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-d.exited })
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case n := <-line:
		if n == "" {
			t.Fatal("bustest: Xvfb exited before it was ready")
		}
		d.Name = ":" + n
	case <-time.After(waitLimit):
		t.Fatalf("bustest: Xvfb did not start within %s", waitLimit)
	}
	return d
}

// Stop ends the X server with SIGTERM, as at the end of a session, and
// waits for it to exit.
func (d *Display) Stop() {
	d.cmd.Process.Signal(syscall.SIGTERM)
	<-d.exited
}
