package systemdtest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Entry is a journal line.
type Entry struct {
	Time time.Time
	// Priority is the syslog level: 3 error, 4 warning, 5 notice, 6 info,
	// 7 debug. Lines a unit writes to stdout or stderr are 6 unless they
	// start with a "<N>" prefix.
	Priority int
	PID      int
	// Comm is the writing process's name.
	Comm string
	// Unit is the unit the writing process ran in: the unit itself for
	// its own lines, another unit for its manager's lines about it
	// ("Started …", "… Deactivated successfully").
	Unit    string
	Message string
	// Fields are all the entry's fields as text, MESSAGE_ID and those a
	// program sent with the native protocol (BUS, APP...) among them.
	Fields map[string]string
}

func (e Entry) String() string {
	return fmt.Sprintf("%s <%d> %s[%d] (%s): %s", e.Time.Format("15:04:05.000000"), e.Priority, e.Comm, e.PID, e.Unit, e.Message)
}

// journalArgs is the journalctl command line for the lines of unit: its
// own and its manager's about it. The journal is read as root, who reads
// the users' lines too; journalctl --user-unit would match the lines of
// root's user units, so the user's are matched field by field.
func (a *Account) journalArgs(unit string, more ...string) []string {
	args := append([]string{"journalctl", "--no-pager", "--output=json"}, more...)
	if !a.user {
		return append(args, "--unit="+unit)
	}
	uid := fmt.Sprintf("_UID=%d", UID)
	return append(args, "_SYSTEMD_USER_UNIT="+unit, uid, "+", "USER_UNIT="+unit, uid)
}

// Journal returns the journal lines of unit, oldest first.
func (a *Account) Journal(unit string) []Entry {
	a.m.t.Helper()
	return a.ParseJournal(a.m.Root.Run(a.journalArgs(unit)...))
}

// WaitJournal waits until a journal line of unit written at or after since
// matches the regular expression pattern, and returns it (a zero since
// takes every line since boot). It fails the test if none does within
// timeout.
func (a *Account) WaitJournal(unit, pattern string, since time.Time, timeout time.Duration) Entry {
	a.m.t.Helper()
	re, err := regexp.Compile(pattern)
	if err != nil {
		a.m.t.Fatalf("systemdtest: WaitJournal: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// journalctl --follow tells each line as it is written; cancelling
	// ctx at the deadline or on a match ends it.
	args := a.journalArgs(unit, "--follow", "--lines=all")
	cmd := a.m.Root.Command(ctx, args[0], args[1:]...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		a.m.t.Fatalf("systemdtest: journalctl: %v", err)
	}
	if err := cmd.Start(); err != nil {
		a.m.t.Fatalf("systemdtest: journalctl: %v", err)
	}
	var found *Entry
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		e, ok := a.parseEntry(sc.Text())
		if ok && !e.Time.Before(since) && re.MatchString(e.Message) {
			found = &e
			break
		}
	}
	cancel()
	cmd.Wait()
	if found == nil {
		a.m.t.Fatalf("systemdtest: no journal line of %s matching %q since %s within %s; its lines:\n%s",
			unit, pattern, since.Format("15:04:05.000000"), timeout, formatEntries(a.Journal(unit), 30))
	}
	return *found
}

// ParseJournal reads the output of journalctl --output=json as the
// account's entries, oldest first.
func (a *Account) ParseJournal(out string) []Entry {
	var entries []Entry
	for line := range strings.SplitSeq(out, "\n") {
		if e, ok := a.parseEntry(line); ok {
			entries = append(entries, e)
		}
	}
	return entries
}

// parseEntry reads one line of journalctl --output=json.
func (a *Account) parseEntry(line string) (Entry, bool) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(line), &fields); err != nil {
		return Entry{}, false
	}
	field := func(name string) string {
		raw := fields[name]
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
		// A value that is not UTF-8 is an array of bytes; a field
		// given more than once is an array of values.
		var b []byte
		var nums []int
		if json.Unmarshal(raw, &nums) == nil {
			for _, n := range nums {
				b = append(b, byte(n))
			}
			return string(b)
		}
		var ss []string
		if json.Unmarshal(raw, &ss) == nil && len(ss) > 0 {
			return ss[0]
		}
		return ""
	}
	us, _ := strconv.ParseInt(field("__REALTIME_TIMESTAMP"), 10, 64)
	e := Entry{
		Time:    time.UnixMicro(us),
		Comm:    field("_COMM"),
		Message: field("MESSAGE"),
	}
	e.Fields = make(map[string]string, len(fields))
	for name := range fields {
		e.Fields[name] = field(name)
	}
	e.Priority, _ = strconv.Atoi(field("PRIORITY"))
	e.PID, _ = strconv.Atoi(field("_PID"))
	if a.user {
		e.Unit = field("_SYSTEMD_USER_UNIT")
	} else {
		e.Unit = field("_SYSTEMD_UNIT")
	}
	return e, true
}

// formatEntries formats the last n entries, one a line.
func formatEntries(entries []Entry, n int) string {
	entries = entries[max(0, len(entries)-n):]
	var b strings.Builder
	for _, e := range entries {
		fmt.Fprintln(&b, e)
	}
	return b.String()
}
