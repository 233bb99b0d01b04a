package relaunch

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"

	"busmedic/relaunch/control"
)

// historyFile is the name of the history file in Config.StateDir.
const historyFile = "history.jsonl"

// historyCap is the size at which history.jsonl is moved to history.jsonl.1
// before the next line is appended; so at most about twice this is kept.
const historyCap = 1 << 20

// historyLog appends one JSON line per ended Recovery. JSON lines survive a
// crash mid-write (only the last line is lost) and are read by jq.
//
// The history is bookkeeping: a state directory that cannot be written
// (replaced by a file, read-only, a full disk) must cost one warning, not
// one per recovery, and never a recovery. So append reports each kind of
// failure once (see troubles), until a line is written again.
type historyLog struct {
	path string
	cap  int64
	mu   sync.Mutex
	// trouble holds the failures of append already reported; under mu.
	trouble troubles
	// logTrouble holds the failures of the apps' logs already reported,
	// by capLogs (only on Run's goroutine). It lives here, beside the
	// history, as the engine's other bookkeeping in the state directory.
	logTrouble troubles
}

// append writes r as one line. It returns an error the first time a kind
// of failure happens (failing to create the directory, to open, to write
// the file, each with its errno) and nil while the same failure repeats,
// so that the caller's warning is logged once; a line written clears the
// record.
func (h *historyLog) append(r control.Recovery) error {
	if h.path == "" {
		return nil
	}
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	stage, err := h.write(append(line, '\n'))
	if err == nil {
		h.trouble.ok()
		return nil
	}
	if !h.trouble.failed(stage + ": " + errnoText(err)) {
		return nil // reported already
	}
	return fmt.Errorf("history: %w (reported once until the history can be written again)", err)
}

// write appends line to the file; stage names the step that failed.
func (h *historyLog) write(line []byte) (stage string, err error) {
	if err := os.MkdirAll(filepath.Dir(h.path), 0o700); err != nil {
		return "mkdir", err
	}
	if st, err := os.Stat(h.path); err == nil && st.Size()+int64(len(line)) > h.cap {
		if err := os.Rename(h.path, h.path+".1"); err != nil {
			return "rotate", fmt.Errorf("rotate: %w", err)
		}
	}
	f, err := os.OpenFile(h.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return "open", err
	}
	// A line torn by a crash would swallow this one: end it first.
	var last [1]byte
	if st, err := f.Stat(); err == nil && st.Size() > 0 {
		if _, err := f.ReadAt(last[:], st.Size()-1); err == nil && last[0] != '\n' {
			line = append([]byte{'\n'}, line...)
		}
	}
	// One write of a whole line: O_APPEND keeps concurrent lines whole.
	if _, err := f.Write(line); err != nil {
		f.Close()
		return "write", fmt.Errorf("write %s: %w", h.path, err)
	}
	if err := f.Close(); err != nil {
		return "close", fmt.Errorf("close %s: %w", h.path, err)
	}
	return "", nil
}

// troubles records the kinds of failure already reported, so that a
// failure that comes back at every event (a state directory that is a
// file, a full disk) is reported once rather than every time, until the
// operation works again. The zero value is ready; it is not safe for
// concurrent use.
type troubles map[string]bool

// failed records a failure of kind (such as "open: not a directory") and
// reports whether it is news, that is, to be reported.
func (t *troubles) failed(kind string) bool {
	if (*t)[kind] {
		return false
	}
	if *t == nil {
		*t = troubles{}
	}
	(*t)[kind] = true
	return true
}

// ok records a success: every failure is news again. It reports whether
// there were failures.
func (t *troubles) ok() bool {
	had := len(*t) > 0
	clear(*t)
	return had
}

// errnoText is the system error under err, such as "no space left on
// device", or err's own text.
func errnoText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	return err.Error()
}

// read returns up to n recoveries (all if n <= 0), newest first. Lines that
// do not parse (a torn last line after a crash) are skipped.
func (h *historyLog) read(n int) ([]control.Recovery, error) {
	if h.path == "" {
		return nil, nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var all []control.Recovery
	for _, p := range []string{h.path + ".1", h.path} {
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("history: %w", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 64*1024), historyCap)
		for sc.Scan() {
			var r control.Recovery
			if json.Unmarshal(sc.Bytes(), &r) == nil {
				all = append(all, r)
			}
		}
	}
	slices.Reverse(all)
	if n > 0 && len(all) > n {
		all = all[:n]
	}
	return all, nil
}
