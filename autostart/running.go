package autostart

import (
	"context"
	"net"

	"golang.org/x/sys/unix"
)

// daemonPID returns the pid of the busmedic daemon that listens on the
// control socket at path, or 0 if none answers. It connects and hangs up
// without a request, which the daemon takes silently; the kernel tells the
// listener's pid (SO_PEERCRED), so no request and no version of the
// protocol is needed.
func daemonPID(ctx context.Context, path string) int {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return 0
	}
	defer c.Close()
	raw, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		return 0
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || credErr != nil {
		return 0
	}
	return int(cred.Pid)
}
