package busrestart

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/godbus/dbus/v5"

	"busmedic/relaunch/control"
)

const (
	systemdName    = "org.freedesktop.systemd1"
	systemdPath    = dbus.ObjectPath("/org/freedesktop/systemd1")
	systemdManager = systemdName + ".Manager"
	busDriver      = "org.freedesktop.DBus"
)

// byHand is what to tell people when busmedic cannot restart the system bus.
const byHand = "as root: systemctl restart dbus, or /etc/init.d/dbus restart; this ends the session of every user"

// SystemRestart restarts the system bus at systemAddress through systemd:
// it finds the unit of the bus daemon (dbus.service or dbus-broker.service)
// and calls RestartUnit with interactive authorisation allowed, so that
// polkit asks the user for the administrator's password. The call is sent
// over the bus that the restart ends: a connection that breaks after the
// call was sent is the restart happening, and counts as success. An error
// reply (access denied, authorisation refused) is returned with its name
// and message. ctx bounds the whole, including the time the user takes to
// answer polkit.
//
// Without systemd on the system bus, or when the bus daemon is not a unit
// of its own, the error is a *control.RestartRefusal that says how to
// restart it by hand.
func SystemRestart(ctx context.Context, systemAddress string) error {
	conn, err := dbus.Connect(systemAddress, dbus.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("restart the system bus: connect: %w", err)
	}
	defer conn.Close()
	unit, err := systemBusUnit(ctx, conn)
	if err != nil {
		return err
	}
	call := <-conn.SendWithContext(ctx, interactiveCall(systemdName, systemdPath, systemdManager, "RestartUnit", unit, "replace"), make(chan *dbus.Call, 1)).Done
	if call.Err == nil {
		return nil
	}
	var derr dbus.Error
	if errors.As(call.Err, &derr) {
		return fmt.Errorf("restart the system bus (%s): %s", unit, describeError(derr))
	}
	// The daemon may die before systemd's reply leaves: the connection
	// breaking is the restart.
	select {
	case <-conn.Context().Done():
		return nil
	default:
	}
	if ctx.Err() != nil {
		return fmt.Errorf("restart the system bus (%s): no answer from systemd: %w", unit, call.Err)
	}
	return fmt.Errorf("restart the system bus (%s): %w", unit, call.Err)
}

// interactiveCall builds a method call that allows interactive
// authorisation. godbus's Object.Call drops that flag (it keeps only
// NoAutoStart and NoReplyExpected), so the message is made by hand.
func interactiveCall(dest string, path dbus.ObjectPath, iface, member string, args ...any) *dbus.Message {
	return &dbus.Message{
		Type:  dbus.TypeMethodCall,
		Flags: dbus.FlagAllowInteractiveAuthorization,
		Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldDestination: dbus.MakeVariant(dest),
			dbus.FieldPath:        dbus.MakeVariant(path),
			dbus.FieldInterface:   dbus.MakeVariant(iface),
			dbus.FieldMember:      dbus.MakeVariant(member),
			dbus.FieldSignature:   dbus.MakeVariant(dbus.SignatureOf(args...)),
		},
		Body: args,
	}
}

// systemBusUnit returns the systemd unit of the bus daemon, or a
// *control.RestartRefusal when there is no systemd or the daemon has no
// unit of its own.
func systemBusUnit(ctx context.Context, conn *dbus.Conn) (string, error) {
	var has bool
	if err := conn.BusObject().CallWithContext(ctx, busDriver+".NameHasOwner", 0, systemdName).Store(&has); err != nil {
		return "", fmt.Errorf("restart the system bus: %w", err)
	}
	if !has {
		return "", &control.RestartRefusal{Bus: "system", Reason: "no systemd on the system bus; " + byHand}
	}
	var pid uint32
	if err := conn.BusObject().CallWithContext(ctx, busDriver+".GetConnectionUnixProcessID", 0, busDriver).Store(&pid); err != nil {
		return "", &control.RestartRefusal{Bus: "system", Reason: fmt.Sprintf("the system bus does not tell its pid (%v); %s", err, byHand)}
	}
	var path dbus.ObjectPath
	if err := conn.Object(systemdName, systemdPath).CallWithContext(ctx, systemdManager+".GetUnitByPID", 0, pid).Store(&path); err != nil {
		return "", &control.RestartRefusal{Bus: "system", PID: int(pid),
			Reason: fmt.Sprintf("no systemd unit for the bus daemon (pid %d): %v; %s", pid, err, byHand)}
	}
	unit := unitFromPath(path)
	var id dbus.Variant
	err := conn.Object(systemdName, path).CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0,
		systemdName+".Unit", "Id").Store(&id)
	if s, ok := id.Value().(string); err == nil && ok && s != "" {
		unit = s
	}
	if !isBusUnit(unit) {
		return "", &control.RestartRefusal{Bus: "system", PID: int(pid), Unit: unit,
			Reason: fmt.Sprintf("the system bus daemon (pid %d) runs in %s, not in dbus.service; %s", pid, unit, byHand)}
	}
	return unit, nil
}

// unitFromPath decodes a unit object path, in which systemd escapes every
// byte outside [A-Za-z0-9] as _xx: .../unit/dbus_2eservice is dbus.service.
func unitFromPath(p dbus.ObjectPath) string {
	s := string(p)
	s = s[strings.LastIndexByte(s, '/')+1:]
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '_' && i+2 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+3], "%02x", &c); err == nil {
				b.WriteByte(c)
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// describeError turns a D-Bus error reply into words for people.
func describeError(e dbus.Error) string {
	msg := ""
	if len(e.Body) > 0 {
		msg, _ = e.Body[0].(string)
	}
	var what string
	switch e.Name {
	case "org.freedesktop.DBus.Error.AccessDenied":
		what = "not allowed (access denied)"
	case "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired":
		what = "authorisation needed, but no polkit agent could ask for it"
	case "org.freedesktop.DBus.Error.NoReply", "org.freedesktop.DBus.Error.Timeout":
		what = "systemd did not answer"
	default:
		what = e.Name
	}
	if msg != "" {
		what += ": " + msg
	}
	return what + " (" + byHand + ")"
}
