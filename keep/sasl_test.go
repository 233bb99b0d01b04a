package keep

import (
	"bufio"
	"encoding/hex"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"busmedic/watcher/bustest"
)

func TestAuthorize(t *testing.T) {
	for _, c := range []struct {
		peer, ours int
		identity   string
		want       bool
	}{
		{1000, 1000, "", true},
		{1000, 1000, "1000", true},
		{1000, 1000, "0", false},
		{0, 1000, "0", false},
		{0, 1000, "", false},
		{1000, 1000, "01000", false},
		{-1, 1000, "", false},
	} {
		if got := authorize(c.peer, c.ours, c.identity); got != c.want {
			t.Errorf("authorize(%d, %d, %q) = %v", c.peer, c.ours, c.identity, got)
		}
	}
}

// TestSASL talks the authentication protocol to a keeper line by line, as
// the clients in the wild do, and then says Hello through it.
func TestSASL(t *testing.T) {
	bus := bustest.New(t)
	tk := startKeeper(t, bus)
	path := strings.TrimPrefix(tk.addr, "unix:path=")
	ourID := hex.EncodeToString([]byte(strconv.Itoa(os.Getuid())))
	otherID := hex.EncodeToString([]byte(strconv.Itoa(os.Getuid() + 1)))
	guids := map[string]bool{}

	type step struct{ send, want string } // want: prefix of the answer
	for name, steps := range map[string][]step{
		"external with identity": {{"AUTH EXTERNAL " + ourID, "OK "}, {"BEGIN", ""}},
		"external then data":     {{"AUTH EXTERNAL", "DATA"}, {"DATA " + ourID, "OK "}, {"BEGIN", ""}},
		"external, empty data":   {{"AUTH EXTERNAL", "DATA"}, {"DATA", "OK "}, {"BEGIN", ""}},
		"list, then external": {{"AUTH", "REJECTED EXTERNAL"}, {"AUTH EXTERNAL " + ourID, "OK "},
			{"NEGOTIATE_UNIX_FD", "AGREE_UNIX_FD"}, {"BEGIN", ""}},
		"other mechanisms": {{"AUTH DBUS_COOKIE_SHA1 " + ourID, "REJECTED EXTERNAL"}, {"AUTH ANONYMOUS", "REJECTED EXTERNAL"},
			{"AUTH EXTERNAL " + ourID, "OK "}, {"BEGIN", ""}},
		"another uid":       {{"AUTH EXTERNAL " + otherID, "REJECTED EXTERNAL"}, {"AUTH EXTERNAL " + ourID, "OK "}, {"BEGIN", ""}},
		"cancel":            {{"AUTH EXTERNAL", "DATA"}, {"CANCEL", "REJECTED EXTERNAL"}, {"AUTH EXTERNAL " + ourID, "OK "}, {"BEGIN", ""}},
		"begin too early":   {{"BEGIN", "ERROR"}, {"NEGOTIATE_UNIX_FD", "ERROR"}, {"AUTH EXTERNAL " + ourID, "OK "}, {"BEGIN", ""}},
		"unknown commands":  {{"HELLO", "ERROR"}, {"AUTH EXTERNAL " + ourID, "OK "}, {"BEGIN", ""}},
		"bad hex":           {{"AUTH EXTERNAL zz", "REJECTED EXTERNAL"}, {"AUTH EXTERNAL " + ourID, "OK "}, {"BEGIN", ""}},
		"external twice ok": {{"AUTH EXTERNAL " + ourID, "OK "}, {"AUTH EXTERNAL " + ourID, "ERROR"}, {"BEGIN", ""}},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(waitLimit))
			in := bufio.NewReader(c)
			c.Write([]byte{0})
			for _, s := range steps {
				c.Write([]byte(s.send + "\r\n"))
				if s.want == "" {
					continue
				}
				line, err := in.ReadString('\n')
				if err != nil || !strings.HasPrefix(line, s.want) || !strings.HasSuffix(line, "\r\n") {
					t.Fatalf("%s: answer %q, %v; want %s", s.send, line, err, s.want)
				}
				if guid, ok := strings.CutPrefix(line, "OK "); ok {
					guids[strings.TrimSpace(guid)] = true
				}
			}
			// Authenticated: Hello through the keeper gets a name.
			c.Write(appendMessage(nil, typeMethodCall, 0, 1, &fields{
				path: "/org/freedesktop/DBus", iface: busName, member: "Hello", dest: busName,
			}, nil))
			reply := make([]byte, 4096)
			n, err := in.Read(reply)
			if err == nil && n >= fixedHeader {
				// NameAcquired may have come in the same read.
				n, err = msgLen(reply[:n])
			}
			var h header
			if err != nil || parseHeader(reply[:n], &h) != nil || h.typ != typeMethodReturn || h.replySerial != 1 {
				t.Fatalf("no reply to Hello: %q %v", reply[:n], err)
			}
			if r := bodyReader(reply[:n], &h, "s"); !strings.HasPrefix(r.str(), ":1.") {
				t.Errorf("Hello answered %q", reply[:n])
			}
		})
	}
	if len(guids) != 1 {
		t.Errorf("the keeper gave %d guids; want one for all", len(guids))
	}
	for g := range guids {
		if _, err := hex.DecodeString(g); err != nil || len(g) != 32 {
			t.Errorf("guid %q is not 32 hex digits", g)
		}
	}
}

// TestSASLNoNul: a client that does not start with the NUL byte is not
// served.
func TestSASLNoNul(t *testing.T) {
	bus := bustest.New(t)
	tk := startKeeper(t, bus)
	c, err := net.Dial("unix", strings.TrimPrefix(tk.addr, "unix:path="))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(waitLimit))
	c.Write([]byte("AUTH EXTERNAL 30\r\n"))
	b, _ := bufio.NewReader(c).ReadString('\n')
	if b != "" {
		t.Errorf("answered %q", b)
	}
}

// TestServerAuthUID: the kernel's word on the peer's uid decides, not
// what the peer claims.
func TestServerAuthUID(t *testing.T) {
	a, b := socketPair(t)
	id := hex.EncodeToString([]byte("1000"))
	go func() {
		b.Write([]byte("\x00AUTH EXTERNAL " + id + "\r\nAUTH EXTERNAL\r\nDATA\r\n"))
	}()
	done := make(chan error, 1)
	go func() {
		_, err := serverAuth(newSock(a), "0123456789abcdef0123456789abcdef", 1001, 1001)
		done <- err
	}()
	in := bufio.NewReader(b)
	for _, want := range []string{"REJECTED EXTERNAL", "DATA", "OK 0123"} {
		line, err := in.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, want) {
			t.Fatalf("answer %q %v, want %s", line, err, want)
		}
	}
	b.Write([]byte("BEGIN\r\n"))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// And a peer of another uid never gets in, whatever it says.
	a, b = socketPair(t)
	go b.Write([]byte("\x00AUTH EXTERNAL " + id + "\r\nAUTH EXTERNAL\r\nDATA\r\n"))
	go func() {
		_, err := serverAuth(newSock(a), "0123456789abcdef0123456789abcdef", 1000, 1001)
		done <- err
	}()
	in = bufio.NewReader(b)
	for _, want := range []string{"REJECTED", "DATA", "REJECTED"} {
		line, _ := in.ReadString('\n')
		if !strings.HasPrefix(line, want) {
			t.Fatalf("answer %q, want %s", line, want)
		}
	}
	b.Close()
	if err := <-done; err == nil {
		t.Error("another uid authenticated")
	}
}

// socketPair returns two connected unix sockets, closed at the test's end.
func socketPair(t testing.TB) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	dir := t.TempDir()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: dir + "/s", Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	b, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: dir + "/s", Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := l.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestServerGUID: the GUID the apps see is 16 bytes in hex, new for each
// keeper, as the D-Bus specification wants a server's.
func TestServerGUID(t *testing.T) {
	a, b := serverGUID(), serverGUID()
	for _, g := range []string{a, b} {
		if id, err := hex.DecodeString(g); err != nil || len(id) != 16 {
			t.Errorf("GUID %q: want 16 bytes in hex (%v)", g, err)
		}
	}
	if a == b {
		t.Errorf("two keepers got the same GUID %s", a)
	}
}
