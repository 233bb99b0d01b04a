package watcher

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ErrBadAddress is wrapped by every error about a bus address that cannot be used.
var ErrBadAddress = errors.New("bad bus address")

// Target is a bus to watch: a label for people and logs, and its address.
type Target struct {
	// Name is "session", "system", or the address itself for a bus given explicitly.
	Name string
	// Address is a D-Bus address such as "unix:path=/run/user/1000/bus".
	Address string
}

// SessionTarget returns the session bus: DBUS_SESSION_BUS_ADDRESS, else
// unix:path=$XDG_RUNTIME_DIR/bus, else the systemd default /run/user/UID/bus.
func SessionTarget() Target {
	addr := os.Getenv("DBUS_SESSION_BUS_ADDRESS")
	if addr == "" {
		dir := os.Getenv("XDG_RUNTIME_DIR")
		if dir == "" {
			dir = "/run/user/" + strconv.Itoa(os.Getuid())
		}
		addr = "unix:path=" + escapeValue(filepath.Join(dir, "bus"))
	}
	return Target{Name: "session", Address: addr}
}

// SystemTarget returns the system bus: DBUS_SYSTEM_BUS_ADDRESS, else
// unix:path=/run/dbus/system_bus_socket.
func SystemTarget() Target {
	addr := os.Getenv("DBUS_SYSTEM_BUS_ADDRESS")
	if addr == "" {
		addr = "unix:path=/run/dbus/system_bus_socket"
	}
	return Target{Name: "system", Address: addr}
}

// ParseTarget turns "session", "system" or a D-Bus address into a Target,
// checking that the address is one busmedic can connect to.
func ParseTarget(spec string) (Target, error) {
	var t Target
	switch spec {
	case "session":
		t = SessionTarget()
	case "system":
		t = SystemTarget()
	default:
		t = Target{Name: spec, Address: spec}
	}
	if _, err := parseAddress(t.Address); err != nil {
		return Target{}, err
	}
	return t, nil
}

// endpoint is one connectable entry of a D-Bus address.
type endpoint struct {
	network string // "unix" or "tcp"
	addr    string // for net.Dial: a path, "@abstract", or "host:port"
	path    string // the socket file for unix:path, "" otherwise
}

// parseAddress parses a D-Bus address list ("a;b") into the endpoints a
// client can dial, in order. Per the D-Bus specification a client tries them
// in turn.
func parseAddress(address string) ([]endpoint, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %q: %s", ErrBadAddress, address, fmt.Sprintf(format, args...))
	}
	if strings.TrimSpace(address) == "" {
		return nil, bad("empty (want unix:path=..., unix:abstract=... or tcp:host=...,port=...)")
	}
	var eps []endpoint
	for entry := range strings.SplitSeq(address, ";") {
		if entry == "" {
			continue
		}
		transport, rest, ok := strings.Cut(entry, ":")
		if !ok {
			return nil, bad("no transport in %q (want unix:path=..., unix:abstract=... or tcp:host=...,port=...)", entry)
		}
		kv := map[string]string{}
		for pair := range strings.SplitSeq(rest, ",") {
			if pair == "" {
				continue
			}
			k, v, ok := strings.Cut(pair, "=")
			if !ok {
				return nil, bad("%q is not key=value", pair)
			}
			uv, err := url.PathUnescape(v)
			if err != nil {
				return nil, bad("bad escape in %s=%s", k, v)
			}
			kv[k] = uv
		}
		switch transport {
		case "unix":
			if kv["path"] != "" && kv["abstract"] != "" {
				return nil, bad("unix transport takes path= or abstract=, not both")
			}
			switch {
			case kv["path"] != "":
				eps = append(eps, endpoint{network: "unix", addr: kv["path"], path: kv["path"]})
			case kv["abstract"] != "":
				eps = append(eps, endpoint{network: "unix", addr: "@" + kv["abstract"]})
			case kv["dir"] != "" || kv["tmpdir"] != "" || kv["runtime"] != "":
				return nil, bad("unix:dir, tmpdir and runtime are for servers; a client needs path= or abstract=")
			default:
				return nil, bad("unix transport needs path= or abstract=")
			}
		case "tcp", "nonce-tcp":
			if transport == "nonce-tcp" {
				return nil, bad("nonce-tcp is not supported; use tcp")
			}
			host, port := kv["host"], kv["port"]
			if host == "" {
				host = "localhost"
			}
			if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
				return nil, bad("tcp transport needs port= between 1 and 65535, got %q", port)
			}
			eps = append(eps, endpoint{network: "tcp", addr: net.JoinHostPort(host, port)})
		default:
			return nil, bad("transport %q is not supported (want unix or tcp)", transport)
		}
	}
	if len(eps) == 0 {
		return nil, bad("no usable entry")
	}
	return eps, nil
}

// escapeValue escapes a value for use in a D-Bus address; only the bytes
// the specification calls optionally-escaped are left alone.
func escapeValue(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("-_/\\.*", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02x", c)
	}
	return b.String()
}

// WithoutGUID returns address with the guid= key left out of every entry.
// A restarted bus has a new guid, and libdbus refuses to connect to an
// address whose guid does not match, so the addresses busmedic hands to
// the apps it starts must not pin one.
func WithoutGUID(address string) string {
	var entries []string
	for entry := range strings.SplitSeq(address, ";") {
		var keys []string
		for key := range strings.SplitSeq(entry, ",") {
			if !strings.HasPrefix(key, "guid=") {
				keys = append(keys, key)
			}
		}
		entries = append(entries, strings.Join(keys, ","))
	}
	return strings.Join(entries, ";")
}
