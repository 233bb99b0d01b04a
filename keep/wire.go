package keep

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The D-Bus wire format, as much of it as the keeper needs: the fixed
// header, the header fields, and the plain string and uint32 arguments of
// the bus driver's messages. Everything else passes through as bytes.

// Message types.
const (
	typeMethodCall   = 1
	typeMethodReturn = 2
	typeError        = 3
	typeSignal       = 4
)

// flagNoReplyExpected is the header flag that says a call wants no reply.
const flagNoReplyExpected = 0x1

// Header field codes.
const (
	fieldPath        = 1
	fieldInterface   = 2
	fieldMember      = 3
	fieldErrorName   = 4
	fieldReplySerial = 5
	fieldDestination = 6
	fieldSender      = 7
	fieldSignature   = 8
	fieldUnixFDs     = 9
)

const (
	// fixedHeader is the size of the part of a header that says how long
	// the message is.
	fixedHeader = 16
	// maxMessage is the specification's limit on a message's size.
	maxMessage = 128 << 20
	// maxFields bounds the header fields a message may have; the
	// specification defines nine, each appearing once.
	maxFields = 16
	// maxDepth bounds container nesting when skipping an unknown field.
	maxDepth = 64
)

// busName is the bus driver's name, the sender of its own messages.
const busName = "org.freedesktop.DBus"

// errProtocol is wrapped by every error about bytes that are not D-Bus.
var errProtocol = errors.New("keep: not a D-Bus message")

// span is where a value lies in a message: bytes [off, end). A zero span
// means the field is absent.
type span struct{ off, end int32 }

func (s span) ok() bool            { return s.end > 0 }
func (s span) in(b []byte) []byte  { return b[s.off:s.end] }
func (s span) str(b []byte) string { return string(b[s.off:s.end]) }

// fieldLoc is one header field entry: its code and the bytes [start, end)
// of the whole entry (code, signature, value) in the message.
type fieldLoc struct {
	code       byte
	start, end int32
}

// header is a parsed message header. It points into the message's bytes
// and holds no pointers of its own, so parsing one allocates nothing.
type header struct {
	big       bool // big-endian ('B')
	typ       byte
	flags     byte
	bodyLen   uint32
	serial    uint32
	fieldsEnd int // end of the header fields array
	bodyStart int
	total     int

	path, iface, member, errName, dest, sender, sig span
	replySerial                                     uint32
	unixFDs                                         uint32

	nfields int
	fields  [maxFields]fieldLoc
}

func getU32(b []byte, big bool) uint32 {
	if big {
		return binary.BigEndian.Uint32(b)
	}
	return binary.LittleEndian.Uint32(b)
}

func putU32(b []byte, big bool, v uint32) {
	if big {
		binary.BigEndian.PutUint32(b, v)
	} else {
		binary.LittleEndian.PutUint32(b, v)
	}
}

func appendU32(b []byte, big bool, v uint32) []byte {
	if big {
		return binary.BigEndian.AppendUint32(b, v)
	}
	return binary.LittleEndian.AppendUint32(b, v)
}

func align(pos, n int) int { return (pos + n - 1) &^ (n - 1) }

// pad appends zeros to b until its length past base is a multiple of n.
func pad(b []byte, base, n int) []byte {
	for (len(b)-base)%n != 0 {
		b = append(b, 0)
	}
	return b
}

// msgLen returns the total length of the message that starts with the 16
// bytes b, or an error if they cannot start a message.
func msgLen(b []byte) (int, error) {
	var big bool
	switch b[0] {
	case 'l':
	case 'B':
		big = true
	default:
		return 0, fmt.Errorf("%w: endianness byte %#x", errProtocol, b[0])
	}
	if b[3] != 1 {
		return 0, fmt.Errorf("%w: protocol version %d", errProtocol, b[3])
	}
	body := uint64(getU32(b[4:], big))
	fields := uint64(getU32(b[12:], big))
	total := uint64(align(fixedHeader+int(fields), 8)) + body
	if fields > maxMessage || total > maxMessage {
		return 0, fmt.Errorf("%w: message of %d bytes is too long", errProtocol, total)
	}
	return int(total), nil
}

// parseHeader parses the header of the complete message msg into h.
func parseHeader(msg []byte, h *header) error {
	if len(msg) < fixedHeader {
		return fmt.Errorf("%w: %d bytes", errProtocol, len(msg))
	}
	total, err := msgLen(msg)
	if err != nil {
		return err
	}
	if total != len(msg) {
		return fmt.Errorf("%w: length %d, header says %d", errProtocol, len(msg), total)
	}
	*h = header{big: msg[0] == 'B', typ: msg[1], flags: msg[2], total: total}
	h.bodyLen = getU32(msg[4:], h.big)
	h.serial = getU32(msg[8:], h.big)
	h.fieldsEnd = fixedHeader + int(getU32(msg[12:], h.big))
	h.bodyStart = align(h.fieldsEnd, 8)
	if h.typ < typeMethodCall || h.typ > typeSignal {
		return fmt.Errorf("%w: message type %d", errProtocol, h.typ)
	}
	if h.serial == 0 {
		return fmt.Errorf("%w: serial 0", errProtocol)
	}
	pos := fixedHeader
	for pos < h.fieldsEnd {
		pos = align(pos, 8)
		if pos+3 > h.fieldsEnd {
			return fmt.Errorf("%w: header field at %d truncated", errProtocol, pos)
		}
		if h.nfields == maxFields {
			return fmt.Errorf("%w: more than %d header fields", errProtocol, maxFields)
		}
		start := pos
		code := msg[pos]
		sigLen := int(msg[pos+1])
		sigEnd := pos + 2 + sigLen
		if sigEnd >= h.fieldsEnd || msg[sigEnd] != 0 {
			return fmt.Errorf("%w: header field %d signature", errProtocol, code)
		}
		sig := msg[pos+2 : sigEnd]
		pos = sigEnd + 1
		var valStart int
		if sigLen == 1 {
			switch sig[0] {
			case 's', 'o':
				pos = align(pos, 4)
				if pos+4 > h.fieldsEnd {
					return fmt.Errorf("%w: header field %d truncated", errProtocol, code)
				}
				n := int(getU32(msg[pos:], h.big))
				valStart = pos + 4
				pos = valStart + n + 1
				if n > h.fieldsEnd || pos > h.fieldsEnd || msg[pos-1] != 0 {
					return fmt.Errorf("%w: header field %d string", errProtocol, code)
				}
				s := span{int32(valStart), int32(pos - 1)}
				switch code {
				case fieldPath:
					h.path = s
				case fieldInterface:
					h.iface = s
				case fieldMember:
					h.member = s
				case fieldErrorName:
					h.errName = s
				case fieldDestination:
					h.dest = s
				case fieldSender:
					h.sender = s
				}
			case 'g':
				if pos >= h.fieldsEnd {
					return fmt.Errorf("%w: header field %d truncated", errProtocol, code)
				}
				n := int(msg[pos])
				valStart = pos + 1
				pos = valStart + n + 1
				if pos > h.fieldsEnd || msg[pos-1] != 0 {
					return fmt.Errorf("%w: header field %d signature value", errProtocol, code)
				}
				if code == fieldSignature {
					h.sig = span{int32(valStart), int32(pos - 1)}
				}
			case 'u':
				pos = align(pos, 4)
				if pos+4 > h.fieldsEnd {
					return fmt.Errorf("%w: header field %d truncated", errProtocol, code)
				}
				v := getU32(msg[pos:], h.big)
				pos += 4
				switch code {
				case fieldReplySerial:
					h.replySerial = v
				case fieldUnixFDs:
					h.unixFDs = v
				}
			default:
				if pos, err = skipValue(msg[:h.fieldsEnd], pos, sig, h.big); err != nil {
					return err
				}
			}
		} else {
			// An unknown field of a compound type: skip it, keep it.
			var si int
			if pos, si, err = skipOne(msg[:h.fieldsEnd], pos, sig, 0, h.big, 0); err != nil {
				return err
			}
			if si != len(sig) {
				return fmt.Errorf("%w: header field %d has more than one type", errProtocol, code)
			}
		}
		h.fields[h.nfields] = fieldLoc{code: code, start: int32(start), end: int32(pos)}
		h.nfields++
	}
	if pos != h.fieldsEnd {
		return fmt.Errorf("%w: header fields overrun", errProtocol)
	}
	for _, b := range msg[h.fieldsEnd:h.bodyStart] {
		if b != 0 {
			return fmt.Errorf("%w: header padding not zero", errProtocol)
		}
	}
	switch {
	case h.typ == typeMethodCall && (!h.path.ok() || !h.member.ok()),
		h.typ == typeSignal && (!h.path.ok() || !h.member.ok() || !h.iface.ok()),
		h.typ == typeError && !h.errName.ok(),
		(h.typ == typeMethodReturn || h.typ == typeError) && h.replySerial == 0:
		return fmt.Errorf("%w: type %d without its required header fields", errProtocol, h.typ)
	}
	return nil
}

// skipValue skips one value of the single complete type sig at pos.
func skipValue(b []byte, pos int, sig []byte, big bool) (int, error) {
	pos, si, err := skipOne(b, pos, sig, 0, big, 0)
	if err == nil && si != len(sig) {
		err = fmt.Errorf("%w: signature %q is not one type", errProtocol, sig)
	}
	return pos, err
}

// skipOne skips the value of the complete type at sig[si] found at b[pos],
// returning the position after the value and the index after the type.
func skipOne(b []byte, pos int, sig []byte, si int, big bool, depth int) (int, int, error) {
	bad := func(what string) (int, int, error) {
		return 0, 0, fmt.Errorf("%w: %s at %d", errProtocol, what, pos)
	}
	if depth > maxDepth {
		return bad("nesting too deep")
	}
	if si >= len(sig) {
		return bad("signature ends")
	}
	fixed := func(n int) (int, int, error) {
		pos = align(pos, n)
		if pos+n > len(b) {
			return bad("value truncated")
		}
		return pos + n, si + 1, nil
	}
	switch sig[si] {
	case 'y':
		return fixed(1)
	case 'n', 'q':
		return fixed(2)
	case 'b', 'i', 'u', 'h':
		return fixed(4)
	case 'x', 't', 'd':
		return fixed(8)
	case 's', 'o':
		pos = align(pos, 4)
		if pos+4 > len(b) {
			return bad("string truncated")
		}
		n := int(getU32(b[pos:], big))
		if n > len(b) || pos+4+n+1 > len(b) {
			return bad("string truncated")
		}
		return pos + 4 + n + 1, si + 1, nil
	case 'g':
		if pos >= len(b) {
			return bad("signature truncated")
		}
		n := int(b[pos])
		if pos+1+n+1 > len(b) {
			return bad("signature truncated")
		}
		return pos + 1 + n + 1, si + 1, nil
	case 'v':
		if pos >= len(b) {
			return bad("variant truncated")
		}
		n := int(b[pos])
		if pos+1+n+1 > len(b) {
			return bad("variant truncated")
		}
		inner := b[pos+1 : pos+1+n]
		p, isi, err := skipOne(b, pos+1+n+1, inner, 0, big, depth+1)
		if err != nil {
			return 0, 0, err
		}
		if isi != len(inner) {
			return bad("variant signature")
		}
		return p, si + 1, nil
	case 'a':
		pos = align(pos, 4)
		if pos+4 > len(b) {
			return bad("array truncated")
		}
		n := int(getU32(b[pos:], big))
		pos += 4
		// The element type's end, without values: skip it in an empty
		// slice of values is not possible, so find it by scanning.
		end, err := typeEnd(sig, si+1, 0)
		if err != nil {
			return 0, 0, err
		}
		pos = align(pos, alignOf(sig[si+1]))
		if n > len(b) || pos+n > len(b) {
			return bad("array truncated")
		}
		return pos + n, end, nil
	case '(', '{':
		closer := byte(')')
		if sig[si] == '{' {
			closer = '}'
		}
		pos = align(pos, 8)
		si++
		for {
			if si >= len(sig) {
				return bad("struct signature")
			}
			if sig[si] == closer {
				return pos, si + 1, nil
			}
			var err error
			if pos, si, err = skipOne(b, pos, sig, si, big, depth+1); err != nil {
				return 0, 0, err
			}
		}
	}
	return bad(fmt.Sprintf("type %q", sig[si]))
}

// typeEnd returns the index after the complete type at sig[si].
func typeEnd(sig []byte, si, depth int) (int, error) {
	if depth > maxDepth || si >= len(sig) {
		return 0, fmt.Errorf("%w: bad signature %q", errProtocol, sig)
	}
	switch sig[si] {
	case 'a':
		return typeEnd(sig, si+1, depth+1)
	case '(', '{':
		closer := byte(')')
		if sig[si] == '{' {
			closer = '}'
		}
		si++
		for si < len(sig) && sig[si] != closer {
			var err error
			if si, err = typeEnd(sig, si, depth+1); err != nil {
				return 0, err
			}
		}
		if si >= len(sig) {
			return 0, fmt.Errorf("%w: bad signature %q", errProtocol, sig)
		}
		return si + 1, nil
	}
	return si + 1, nil
}

func alignOf(t byte) int {
	switch t {
	case 'n', 'q':
		return 2
	case 'b', 'i', 'u', 'h', 's', 'o', 'a':
		return 4
	case 'x', 't', 'd', '(', '{':
		return 8
	}
	return 1
}

// fields are the header fields of a message the keeper writes itself.
type fields struct {
	path, iface, member, errName, dest, sender, sig string
	replySerial                                     uint32
}

// appendMessage appends a little-endian message with fields f and body
// (already marshalled, starting 8-aligned) to dst.
func appendMessage(dst []byte, typ, flags byte, serial uint32, f *fields, body []byte) []byte {
	base := len(dst)
	dst = append(dst, 'l', typ, flags, 1)
	dst = appendU32(dst, false, uint32(len(body)))
	dst = appendU32(dst, false, serial)
	dst = append(dst, 0, 0, 0, 0) // fields length, below
	str := func(code byte, t byte, v string) {
		if v == "" {
			return
		}
		dst = appendStringField(dst, base, false, code, t, v)
	}
	str(fieldPath, 'o', f.path)
	str(fieldInterface, 's', f.iface)
	str(fieldMember, 's', f.member)
	str(fieldErrorName, 's', f.errName)
	if f.replySerial != 0 {
		dst = pad(dst, base, 8)
		dst = append(dst, fieldReplySerial, 1, 'u', 0)
		dst = appendU32(dst, false, f.replySerial)
	}
	str(fieldDestination, 's', f.dest)
	str(fieldSender, 's', f.sender)
	if f.sig != "" {
		dst = pad(dst, base, 8)
		dst = append(dst, fieldSignature, 1, 'g', 0, byte(len(f.sig)))
		dst = append(dst, f.sig...)
		dst = append(dst, 0)
	}
	putU32(dst[base+12:], false, uint32(len(dst)-base-fixedHeader))
	dst = pad(dst, base, 8)
	return append(dst, body...)
}

// appendStringField appends a header field entry of type t ('s' or 'o')
// holding v, 8-aligned relative to base.
func appendStringField(dst []byte, base int, big bool, code, t byte, v string) []byte {
	dst = pad(dst, base, 8)
	dst = append(dst, code, 1, t, 0)
	dst = appendU32(dst, big, uint32(len(v)))
	dst = append(dst, v...)
	return append(dst, 0)
}

// rewrite appends msg to dst with its destination and sender fields set
// to dest and sender where those are not "" (a field absent in msg is not
// added), and with body in place of its body if body is not nil. The
// message keeps its byte order; lengths and padding are recomputed.
func rewrite(dst, msg []byte, h *header, dest, sender string, body []byte) []byte {
	base := len(dst)
	dst = append(dst, msg[:fixedHeader]...)
	for i := 0; i < h.nfields; i++ {
		f := h.fields[i]
		dst = pad(dst, base, 8)
		switch {
		case f.code == fieldDestination && dest != "":
			dst = appendStringField(dst, base, h.big, fieldDestination, 's', dest)
		case f.code == fieldSender && sender != "":
			dst = appendStringField(dst, base, h.big, fieldSender, 's', sender)
		default:
			// Entries start 8-aligned, so the alignment inside one
			// does not change when it moves.
			dst = append(dst, msg[f.start:f.end]...)
		}
	}
	putU32(dst[base+12:], h.big, uint32(len(dst)-base-fixedHeader))
	dst = pad(dst, base, 8)
	if body == nil {
		body = msg[h.bodyStart:]
	}
	putU32(dst[base+4:], h.big, uint32(len(body)))
	return append(dst, body...)
}

// reader reads the arguments of a body. Alignment is relative to the
// body's start, which is 8-aligned in the message.
type reader struct {
	b   []byte
	pos int
	big bool
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: body: %s at %d", errProtocol, what, r.pos)
	}
}

func (r *reader) u32() uint32 {
	if r.err != nil {
		return 0
	}
	p := align(r.pos, 4)
	if p+4 > len(r.b) {
		r.fail("uint32 truncated")
		return 0
	}
	r.pos = p + 4
	return getU32(r.b[p:], r.big)
}

// strBytes reads a string ('s' or 'o') without copying it.
func (r *reader) strBytes() []byte {
	n := int(r.u32())
	if r.err != nil {
		return nil
	}
	if n > len(r.b) || r.pos+n+1 > len(r.b) {
		r.fail("string truncated")
		return nil
	}
	s := r.b[r.pos : r.pos+n]
	r.pos += n + 1
	return s
}

func (r *reader) str() string { return string(r.strBytes()) }

func (r *reader) strArray() []string {
	n := int(r.u32())
	if r.err != nil {
		return nil
	}
	end := r.pos + n
	if n > len(r.b) || end > len(r.b) {
		r.fail("array truncated")
		return nil
	}
	var out []string
	for r.err == nil && r.pos < end {
		out = append(out, r.str())
	}
	return out
}

// bodyReader returns a reader of msg's body if its signature starts with
// prefix (such as "s" or "su"), else nil.
func bodyReader(msg []byte, h *header, prefix string) *reader {
	if !h.sig.ok() || len(h.sig.in(msg)) < len(prefix) || string(h.sig.in(msg)[:len(prefix)]) != prefix {
		return nil
	}
	return &reader{b: msg[h.bodyStart:], big: h.big}
}

// writer marshals a body.
type writer struct {
	b   []byte
	big bool
}

func (w *writer) u32(v uint32) {
	w.b = pad(w.b, 0, 4)
	w.b = appendU32(w.b, w.big, v)
}

func (w *writer) str(s string) {
	w.u32(uint32(len(s)))
	w.b = append(w.b, s...)
	w.b = append(w.b, 0)
}

func (w *writer) strArray(ss []string) {
	w.u32(0)
	at := len(w.b) - 4
	for _, s := range ss {
		w.str(s)
	}
	putU32(w.b[at:], w.big, uint32(len(w.b)-at-4))
}
