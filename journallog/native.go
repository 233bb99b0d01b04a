package journallog

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/coreos/go-systemd/v22/journal"
)

// sendFunc sends one record to the journal: journal.Send.
type sendFunc func(message string, priority journal.Priority, fields map[string]string) error

// NewJournalHandler returns a handler that sends each record to the
// journal over its native protocol (go-systemd's journal.Send): MESSAGE is
// the line NewHandler writes, without the priority prefix; PRIORITY is
// the record's level as NewHandler maps it; every attribute becomes a
// field of its own (key in capitals, groups joined by "_": app=dunst is
// APP=dunst); a record whose EventKey attribute names an event of Events
// carries that event's MESSAGE_ID; SYSLOG_IDENTIFIER is identifier.
//
// A record the journal does not take (its socket is gone while journald
// restarts) is written to w, the journal stream, as NewHandler writes it,
// so that it is not lost. Records are sent one at a time, in the order
// they are logged.
func NewJournalHandler(w io.Writer, identifier string, opts *slog.HandlerOptions) slog.Handler {
	return newNative(w, identifier, opts, journal.Send)
}

func newNative(w io.Writer, identifier string, opts *slog.HandlerOptions, send sendFunc) *native {
	n := &native{shared: &nativeShared{
		send:       send,
		identifier: identifier,
		fallback:   NewHandler(w, opts),
	}}
	var o slog.HandlerOptions
	if opts != nil {
		o = *opts
	}
	replace := o.ReplaceAttr
	o.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey) {
			return slog.Attr{}
		}
		if replace != nil {
			return replace(groups, a)
		}
		return a
	}
	n.shared.replace = replace
	n.text = slog.NewTextHandler(&n.shared.buf, &o)
	return n
}

// nativeShared is what a handler and those made from it by WithAttrs and
// WithGroup share: one lock, so that records go out one at a time and in
// order.
type nativeShared struct {
	mu         sync.Mutex
	buf        bytes.Buffer // the text handler's line for the record in hand
	send       sendFunc
	identifier string
	fallback   slog.Handler
	replace    func(groups []string, a slog.Attr) slog.Attr
}

type native struct {
	shared *nativeShared
	text   slog.Handler                      // MESSAGE: the text line, into shared.buf
	fields []field                           // from WithAttrs, with their groups
	groups []string                          // from WithGroup
	calls  []func(slog.Handler) slog.Handler // how fallback is made the same
}

type field struct {
	groups []string
	attr   slog.Attr
}

func (h *native) Enabled(ctx context.Context, level slog.Level) bool {
	return h.text.Enabled(ctx, level)
}

func (h *native) Handle(ctx context.Context, r slog.Record) error {
	s := h.shared
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf.Reset()
	if err := h.text.Handle(ctx, r); err != nil {
		return err
	}
	msg := strings.TrimSuffix(s.buf.String(), "\n")
	vars := map[string]string{}
	if s.identifier != "" {
		vars["SYSLOG_IDENTIFIER"] = s.identifier
	}
	for _, f := range h.fields {
		s.addField(vars, f.groups, f.attr)
	}
	r.Attrs(func(a slog.Attr) bool {
		s.addField(vars, h.groups, a)
		return true
	})
	if id, ok := MessageID(vars["EVENT"]); ok {
		vars["MESSAGE_ID"] = id
	}
	if err := s.send(msg, priorities[priority(r.Level)], vars); err != nil {
		// The stream, as without the native protocol.
		fb := s.fallback
		for _, c := range h.calls {
			fb = c(fb)
		}
		return fb.Handle(ctx, r)
	}
	return nil
}

// addField adds attribute a, under groups, to vars: groups are flattened,
// and a value that is a group gives one field per attribute.
func (s *nativeShared) addField(vars map[string]string, groups []string, a slog.Attr) {
	if s.replace != nil && a.Value.Kind() != slog.KindGroup {
		a = s.replace(groups, a)
	}
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return
	}
	if a.Value.Kind() == slog.KindGroup {
		g := groups
		if a.Key != "" {
			g = append(groups[:len(groups):len(groups)], a.Key)
		}
		for _, m := range a.Value.Group() {
			s.addField(vars, g, m)
		}
		return
	}
	name := FieldName(append(groups[:len(groups):len(groups)], a.Key))
	if name == "" {
		return
	}
	vars[name] = a.Value.String()
}

// FieldName is the journal field of an attribute with key path (its
// groups, then its key): in capitals, with "_" between the parts and for
// any character that is not a letter, digit or "_" (["app", "id"] is
// APP_ID, "new-pid" NEW_PID). A name the journal keeps for itself
// (MESSAGE, PRIORITY, MESSAGE_ID, SYSLOG_IDENTIFIER, CODE_FILE, ...) or
// that could not be a field (starting with a digit or "_") gets the prefix
// BUSMEDIC_; at most 64 characters are kept.
func FieldName(path []string) string {
	var b strings.Builder
	for i, p := range path {
		if i > 0 {
			b.WriteByte('_')
		}
		for _, c := range p {
			switch {
			case c >= 'a' && c <= 'z':
				b.WriteRune(c - 'a' + 'A')
			case c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
				b.WriteRune(c)
			default:
				b.WriteByte('_')
			}
		}
	}
	name := b.String()
	if name == "" {
		return ""
	}
	if reserved(name) || name[0] == '_' || name[0] >= '0' && name[0] <= '9' {
		name = "BUSMEDIC_" + name
	}
	return name[:min(len(name), 64)]
}

// reserved reports whether name is a field the journal or this package
// sets, or that journalctl reads with a meaning of its own.
func reserved(name string) bool {
	switch name {
	case "MESSAGE", "MESSAGE_ID", "PRIORITY", "SYSLOG_IDENTIFIER", "SYSLOG_FACILITY", "SYSLOG_PID",
		"SYSLOG_TIMESTAMP", "SYSLOG_RAW", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "ERRNO", "TID",
		"INVOCATION_ID", "USER_INVOCATION_ID", "UNIT", "USER_UNIT", "DOCUMENTATION",
		"OBJECT_PID", "COREDUMP_UNIT", "COREDUMP_USER_UNIT":
		return true
	}
	return false
}

func (h *native) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	n := *h
	n.text = h.text.WithAttrs(attrs)
	n.fields = append([]field(nil), h.fields...)
	for _, a := range attrs {
		n.fields = append(n.fields, field{groups: h.groups, attr: a})
	}
	n.calls = append(h.calls[:len(h.calls):len(h.calls)], func(f slog.Handler) slog.Handler { return f.WithAttrs(attrs) })
	return &n
}

func (h *native) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := *h
	n.text = h.text.WithGroup(name)
	n.groups = append(h.groups[:len(h.groups):len(h.groups)], name)
	n.calls = append(h.calls[:len(h.calls):len(h.calls)], func(f slog.Handler) slog.Handler { return f.WithGroup(name) })
	return &n
}
