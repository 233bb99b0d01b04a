package bustest_test

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"strings"
	"testing"

	"busmedic/watcher/bustest"
)

func TestStopKillStart(t *testing.T) {
	bus := bustest.New(t)
	addr, socket := bus.Address(), bus.SocketPath()
	if !strings.HasPrefix(addr, "unix:path=") || strings.Contains(addr, "guid=") {
		t.Fatalf("Address() = %q, want unix:path= without guid", addr)
	}
	dial(t, socket)

	bus.Stop()
	if bus.Running() {
		t.Fatal("Running() after Stop")
	}
	if _, err := os.Stat(socket); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket after SIGTERM: %v, want it removed", err)
	}
	bus.Start()
	if bus.Address() != addr {
		t.Errorf("address after restart %q, want %q", bus.Address(), addr)
	}
	dial(t, socket)

	pid := bus.PID()
	bus.Kill()
	if _, err := os.Stat(socket); err != nil {
		t.Errorf("socket after SIGKILL: %v, want it left behind", err)
	}
	if _, err := net.Dial("unix", socket); err == nil {
		t.Error("a killed bus still accepts connections")
	}
	bus.Start()
	dial(t, socket)
	bus.Restart()
	if bus.PID() == pid || bus.PID() == 0 {
		t.Errorf("PID() after restart = %d (was %d)", bus.PID(), pid)
	}
	dial(t, socket)
}

func TestTCPKeepsPort(t *testing.T) {
	bus := bustest.New(t, bustest.TCP())
	addr := bus.Address()
	bus.Restart()
	if bus.Address() != addr {
		t.Errorf("TCP address after restart %q, want %q", bus.Address(), addr)
	}
}

func TestApp(t *testing.T) {
	bus := bustest.New(t)
	app := bus.StartApp("-name", "org.example.A")
	bus.Kill()
	<-app.Exited() // in exit mode it dies with its bus, as libdbus programs do
	if code := app.Cmd.ProcessState.ExitCode(); code != 1 {
		t.Errorf("testapp exit code %d, want 1", code)
	}
}

func dial(t *testing.T, socket string) {
	t.Helper()
	c, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatalf("dial %s: %v", socket, err)
	}
	c.Close()
}
