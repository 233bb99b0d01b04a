package busrestart

import (
	"context"
	"fmt"

	"busmedic/usermanager"
)

// systemdUnit restarts a bus that is a systemd user unit.
type systemdUnit struct {
	Socket string // the user manager's private socket
	Unit   string // dbus.service or dbus-broker.service
}

func (s *systemdUnit) String() string { return "systemd user unit " + s.Unit }

// Restart asks the user manager to restart the unit, with mode "replace".
func (s *systemdUnit) Restart(ctx context.Context) error {
	conn, err := usermanager.Dial(ctx, s.Socket)
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
	conn, err := usermanager.Dial(ctx, socket)
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
