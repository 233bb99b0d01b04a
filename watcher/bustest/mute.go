package bustest

import (
	"bufio"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Mute listens at path, a unix socket, as a D-Bus peer that is stuck: it
// takes each connection, lets it authenticate (SASL EXTERNAL, with unix fds)
// and then reads all and answers nothing, as a bus daemon or a systemd
// manager that hangs. begun gets a value as each connection ends its
// handshake. It stops when the test ends.
func Mute(t testing.TB, path string) (begun <-chan struct{}) {
	t.Helper()
	began := make(chan struct{}, 64)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			go muteConn(c, began)
		}
	}()
	return began
}

// muteConn authenticates c, then reads it until it closes.
func muteConn(c net.Conn, began chan<- struct{}) {
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		switch line = strings.TrimPrefix(strings.TrimSpace(line), "\x00"); {
		case line == "AUTH":
			io.WriteString(c, "REJECTED EXTERNAL\r\n")
		case strings.HasPrefix(line, "AUTH EXTERNAL"):
			io.WriteString(c, "OK 0123456789abcdef0123456789abcdef\r\n")
		case line == "NEGOTIATE_UNIX_FD":
			io.WriteString(c, "AGREE_UNIX_FD\r\n")
		case line == "BEGIN":
			select {
			case began <- struct{}{}:
			default:
			}
			io.Copy(io.Discard, r)
			return
		}
	}
}
