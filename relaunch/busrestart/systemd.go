package busrestart

import (
	"context"
	"fmt"
	"os"
	"strconv"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// systemdUnit restarts a bus that is a systemd user unit.
type systemdUnit struct {
	Socket string // the user manager's private socket
	Unit   string // dbus.service or dbus-broker.service
}

func (s *systemdUnit) String() string { return "systemd user unit " + s.Unit }

// Restart asks the user manager to restart the unit, with mode "replace".
func (s *systemdUnit) Restart(ctx context.Context) error {
	conn, err := connect(ctx, s.Socket)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.RestartUnitContext(ctx, s.Unit, "replace", nil); err != nil {
		return fmt.Errorf("restart %s through %s: %w", s.Unit, s.Socket, err)
	}
	return nil
}

// unitOf returns the unit the user manager puts pid in.
func unitOf(ctx context.Context, socket string, pid int) (string, error) {
	conn, err := connect(ctx, socket)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	unit, err := conn.GetUnitNameByPID(ctx, uint32(pid))
	if err != nil {
		return "", fmt.Errorf("unit of pid %d: %w", pid, err)
	}
	return unit, nil
}

// connect opens the user manager's private socket: a direct connection,
// authenticated as us. go-systemd is the client; the dialing is ours, since
// its own helpers reach the user manager over the session bus, which is the
// bus about to be restarted.
func connect(ctx context.Context, socket string) (*sdbus.Conn, error) {
	if _, err := os.Stat(socket); err != nil {
		return nil, fmt.Errorf("no systemd user manager: %w", err)
	}
	conn, err := sdbus.NewConnection(func() (*dbus.Conn, error) {
		c, err := dbus.Dial("unix:path="+socket, dbus.WithContext(ctx))
		if err != nil {
			return nil, err
		}
		if err := c.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
			c.Close()
			return nil, err
		}
		// A direct connection: no bus driver, so no Hello.
		return c, nil
	})
	if err != nil {
		return nil, fmt.Errorf("connect to the systemd user manager at %s: %w", socket, err)
	}
	return conn, nil
}
