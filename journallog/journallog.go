// Package journallog writes busmedic's log to the systemd journal, when
// systemd connected busmedic's stderr to the journal (busmedic.service):
// each record at its priority, so that `journalctl --user -u busmedic -p
// warning` shows the warnings and errors only, and with its attributes as
// fields and a stable MESSAGE_ID for the events people count (a bus
// restarted, an app recovered, a recovery failed, an update waiting for a
// bus restart), so that `journalctl --user -u busmedic MESSAGE_ID=...`
// and a fleet's log collector count them.
//
// NewLogger is busmedic's log: through NewJournalHandler under the
// unit, as text anywhere else.
//
// NewJournalHandler sends each record over the journal's native protocol
// (go-systemd's journal.Send): the stream systemd gave busmedic carries
// text only, and a MESSAGE_ID or a field can only be given on the journal's
// socket. Every record goes there, not only those with a MESSAGE_ID: the
// journal orders the records of one socket as they come, but not the lines
// of a stream against the datagrams of a socket, so that splitting
// busmedic's records between the two could show "app recovered" before the
// "bus restarted" that caused it. Records are sent one at a time under a
// lock, in the order they are logged; the MESSAGE is the text line they
// had on the stream, so that journalctl shows what it showed before. What
// else reaches stderr (a panic's stack) stays on the stream, and a record
// the socket does not take (journald restarting) falls back to it.
//
// NewHandler is that stream format: one text line per record, as slog's
// TextHandler writes it, prefixed with the record's syslog priority: "<3>"
// for errors, "<4>" warnings, "<6>" information, "<7>" debug detail.
// journald reads that prefix off every line of a stream (sd-daemon(3);
// SyslogLevelPrefix= is yes by default) and sets PRIORITY= from it.
package journallog

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"syscall"

	"github.com/coreos/go-systemd/v22/journal"
)

// IsJournal reports whether f is the journal stream systemd connected the
// process to: JOURNAL_STREAM holds its device and inode numbers
// ("dev:inode", systemd.exec(5)). A stream that was redirected since (to a
// file, a pipe) does not match, so that its output stays plain text.
//
// It is go-systemd's journal.StderrIsJournalStream for any file: that one
// looks at file descriptor 2 only.
func IsJournal(f *os.File) bool {
	env := os.Getenv("JOURNAL_STREAM")
	if env == "" || f == nil {
		return false
	}
	var dev, ino uint64
	if _, err := fmt.Sscanf(env, "%d:%d", &dev, &ino); err != nil {
		return false
	}
	fi, err := f.Stat()
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && uint64(st.Dev) == dev && uint64(st.Ino) == ino
}

// NewLogger returns busmedic's log to w at level: when w is the journal
// stream systemd gave busmedic.service (IsJournal), each record goes to the
// journal with its priority and its fields (NewJournalHandler), so that
// journalctl shows errors as errors and counts recoveries; anywhere else,
// as slog's text lines. The tray child inherits the stream and does the
// same.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if f, ok := w.(*os.File); ok && IsJournal(f) {
		return slog.New(NewJournalHandler(w, "busmedic", opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// NewHandler returns a handler that writes each record to w as one line of
// slog's text format, with its syslog priority in front ("<6>level=INFO
// msg=..."). opts are as for slog.NewTextHandler; the time is left out,
// as the journal stamps every record itself.
func NewHandler(w io.Writer, opts *slog.HandlerOptions) slog.Handler {
	var o slog.HandlerOptions
	if opts != nil {
		o = *opts
	}
	replace := o.ReplaceAttr
	o.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		if replace != nil {
			return replace(groups, a)
		}
		return a
	}
	// One text handler per priority, each writing through its own prefix;
	// they share one lock, so that no two records mix on w.
	mu := new(sync.Mutex)
	var h handler
	for i, p := range priorities {
		h.text[i] = slog.NewTextHandler(&prefixWriter{mu: mu, w: w, prefix: fmt.Sprintf("<%d>", p)}, &o)
	}
	return &h
}

// priorities are the journal's priorities of busmedic's records, in the
// order of handler.text.
var priorities = [...]journal.Priority{journal.PriErr, journal.PriWarning, journal.PriInfo, journal.PriDebug}

// priority is the index in priorities of a record at level: slog's four
// levels map to err, warning, info and debug; a level between two takes
// the lower one's priority, so that only an error is ever filed as one.
func priority(level slog.Level) int {
	switch {
	case level >= slog.LevelError:
		return 0
	case level >= slog.LevelWarn:
		return 1
	case level >= slog.LevelInfo:
		return 2
	default:
		return 3
	}
}

type handler struct {
	text [len(priorities)]slog.Handler
}

func (h *handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.text[0].Enabled(ctx, level)
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	return h.text[priority(r.Level)].Handle(ctx, r)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	var n handler
	for i, t := range h.text {
		n.text[i] = t.WithAttrs(attrs)
	}
	return &n
}

func (h *handler) WithGroup(name string) slog.Handler {
	var n handler
	for i, t := range h.text {
		n.text[i] = t.WithGroup(name)
	}
	return &n
}

// prefixWriter puts prefix in front of each write: slog's text handler
// writes each record, a single line, in one call.
type prefixWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// One write per line: a stream reader sees the prefix and its line
	// together.
	p.buf = append(append(p.buf[:0], p.prefix...), b...)
	if _, err := p.w.Write(p.buf); err != nil {
		return 0, err
	}
	return len(b), nil
}
