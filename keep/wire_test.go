package keep

import (
	"bytes"
	"encoding/binary"
	"slices"
	"testing"

	"github.com/godbus/dbus/v5"
)

// encode marshals a godbus message in the given byte order, with serial 7
// (godbus leaves the serial to its connection).
func encode(t testing.TB, m *dbus.Message, order binary.ByteOrder) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := m.EncodeTo(&b, order); err != nil {
		t.Fatal(err)
	}
	order.PutUint32(b.Bytes()[8:], 7)
	return b.Bytes()
}

func nocSignal() *dbus.Message {
	return &dbus.Message{
		Type: dbus.TypeSignal,
		Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldPath:        dbus.MakeVariant(dbus.ObjectPath("/org/freedesktop/DBus")),
			dbus.FieldInterface:   dbus.MakeVariant("org.freedesktop.DBus"),
			dbus.FieldMember:      dbus.MakeVariant("NameOwnerChanged"),
			dbus.FieldSender:      dbus.MakeVariant("org.freedesktop.DBus"),
			dbus.FieldDestination: dbus.MakeVariant(":1.5"),
			dbus.FieldSignature:   dbus.MakeVariant(dbus.SignatureOf("", "", "")),
		},
		Body: []any{"org.example.Name", ":1.17", ":1.200"},
	}
}

func TestParseHeaderBothByteOrders(t *testing.T) {
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		t.Run(order.String(), func(t *testing.T) {
			msg := encode(t, nocSignal(), order)
			n, err := msgLen(msg[:fixedHeader])
			if err != nil || n != len(msg) {
				t.Fatalf("msgLen = %d, %v; want %d", n, err, len(msg))
			}
			var h header
			if err := parseHeader(msg, &h); err != nil {
				t.Fatal(err)
			}
			if h.big != (order == binary.BigEndian) || h.typ != typeSignal || h.serial != 7 ||
				h.member.str(msg) != "NameOwnerChanged" || h.iface.str(msg) != busName ||
				h.path.str(msg) != "/org/freedesktop/DBus" || h.dest.str(msg) != ":1.5" ||
				h.sender.str(msg) != busName || h.sig.str(msg) != "sss" {
				t.Errorf("header %+v", h)
			}
			r := bodyReader(msg, &h, "sss")
			if got := []string{r.str(), r.str(), r.str()}; r.err != nil || !slices.Equal(got, []string{"org.example.Name", ":1.17", ":1.200"}) {
				t.Errorf("body %q, %v", got, r.err)
			}
		})
	}
}

// TestRewriteRoundTrip: a message with its destination, sender and body
// rewritten decodes (with godbus) as the same message with the new values,
// in both byte orders, however the lengths change.
func TestRewriteRoundTrip(t *testing.T) {
	for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		for _, c := range []struct{ dest, sender string }{
			{":1.5000", ""}, {"", ":1.1"}, {":2.0", "org.freedesktop.DBus.Longer.Name"}, {":1.5", ""},
		} {
			msg := encode(t, nocSignal(), order)
			var h header
			if err := parseHeader(msg, &h); err != nil {
				t.Fatal(err)
			}
			w := writer{big: h.big}
			w.str("org.example.Name")
			w.str(":1.3")
			w.str("")
			prefix := []byte("junk") // a message need not start the buffer
			out := rewrite(slices.Clone(prefix), msg, &h, c.dest, c.sender, w.b)
			got, err := dbus.DecodeMessage(bytes.NewReader(out[len(prefix):]))
			if err != nil {
				t.Fatalf("%v %+v: decode: %v", order, c, err)
			}
			want := nocSignal()
			if c.dest != "" {
				want.Headers[dbus.FieldDestination] = dbus.MakeVariant(c.dest)
			}
			if c.sender != "" {
				want.Headers[dbus.FieldSender] = dbus.MakeVariant(c.sender)
			}
			want.Body = []any{"org.example.Name", ":1.3", ""}
			want, err = dbus.DecodeMessage(bytes.NewReader(encode(t, want, order)))
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() || !slices.Equal(got.Body, want.Body) {
				t.Errorf("%v %+v:\n got %v\nwant %v", order, c, got, want)
			}
			var h2 header
			if err := parseHeader(out[len(prefix):], &h2); err != nil || h2.big != h.big {
				t.Errorf("reparse: %v", err)
			}
		}
	}
}

// TestAppendMessage: what the keeper writes itself is D-Bus.
func TestAppendMessage(t *testing.T) {
	w := writer{}
	w.str("no bus")
	b := appendMessage([]byte("x"), typeError, flagNoReplyExpected, 9, &fields{
		errName: errNoServer, replySerial: 3, dest: ":1.4", sender: busName, sig: "s",
	}, w.b)
	m, err := dbus.DecodeMessage(bytes.NewReader(b[1:]))
	if err != nil {
		t.Fatal(err)
	}
	if m.Type != dbus.TypeError || m.Serial() != 9 || m.Headers[dbus.FieldReplySerial].Value() != uint32(3) ||
		m.Headers[dbus.FieldErrorName].Value() != errNoServer || m.Headers[dbus.FieldDestination].Value() != ":1.4" ||
		!slices.Equal(m.Body, []any{"no bus"}) {
		t.Errorf("decoded %v", m)
	}
}

func TestParseHeaderRejects(t *testing.T) {
	good := encode(t, nocSignal(), binary.LittleEndian)
	for name, mutate := range map[string]func([]byte) []byte{
		"endianness":   func(b []byte) []byte { b[0] = 'x'; return b },
		"version":      func(b []byte) []byte { b[3] = 2; return b },
		"type":         func(b []byte) []byte { b[1] = 9; return b },
		"short":        func(b []byte) []byte { return b[:len(b)-1] },
		"fields long":  func(b []byte) []byte { binary.LittleEndian.PutUint32(b[12:], 1<<30); return b },
		"serial zero":  func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:], 0); return b },
		"string nul":   func(b []byte) []byte { b[bytes.Index(b, []byte("/org"))+len("/org/freedesktop/DBus")] = 'x'; return b },
		"no member":    func(b []byte) []byte { b[bytes.Index(b, []byte("NameOwner"))-8] = 99; return b },
		"bad sig type": func(b []byte) []byte { b[bytes.Index(b, []byte("NameOwner"))-6] = '?'; return b },
	} {
		t.Run(name, func(t *testing.T) {
			var h header
			if err := parseHeader(mutate(slices.Clone(good)), &h); err == nil {
				t.Error("accepted")
			}
		})
	}
}

func TestMatches(t *testing.T) {
	noc := &signal{sender: busName, iface: busName, member: "NameOwnerChanged", path: "/org/freedesktop/DBus",
		args: []string{"org.example.Name", ":1.4", ""}}
	for _, c := range []struct {
		rule string
		want bool
	}{
		{"type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='org.example.Name'", true},
		{"type='signal',member='NameOwnerChanged',arg0='org.example.Other'", false},
		{"type='method_call'", false},
		{"", true},
		{"arg0namespace='org.example'", true},
		{"arg0namespace='org.ex'", false},
		{"arg1=':1.4',arg2=''", true},
		{"arg3='x'", false},
		{"path_namespace='/org/freedesktop'", true},
		{"path_namespace='/org/free'", false},
		{"destination=':1.9'", false},
		{"sender=':1.3'", false},
		{"eavesdrop='true',member='NameOwnerChanged'", true},
		{"unknown='x'", false},
		{"member='NameOwnerChanged", false}, // unterminated
	} {
		if got := matches(c.rule, noc); got != c.want {
			t.Errorf("matches(%q) = %v, want %v", c.rule, got, c.want)
		}
	}
}

func TestMatchRuleForms(t *testing.T) {
	kvs, err := parseMatch(`member='it'\''s',arg0='a,b'`)
	if err != nil || !slices.Equal(kvs, []matchKV{{"member", "it's"}, {"arg0", "a,b"}}) {
		t.Fatalf("parseMatch: %v %v", kvs, err)
	}
	if got := formatMatch(kvs); got != `member='it'\''s',arg0='a,b'` {
		t.Errorf("formatMatch: %s", got)
	}
	if canonicalRule("member='m',type='signal'") != canonicalRule("type='signal', member='m'") {
		t.Error("canonicalRule differs for the same rule")
	}
	mapped := mapMatch("type='signal',sender=':1.2',arg0=':1.2',path='/a'", func(n string) string {
		if n == ":1.2" {
			return ":1.9"
		}
		return ""
	})
	if mapped != "type='signal',sender=':1.9',arg0=':1.9',path='/a'" {
		t.Errorf("mapMatch: %s", mapped)
	}
	if w := watchedName("type='signal',member='NameOwnerChanged',arg0='org.x'"); w != "org.x" {
		t.Errorf("watchedName = %q", w)
	}
}
