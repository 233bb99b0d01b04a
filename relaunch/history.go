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
)

// HistoryFile is the name of the history file in Config.StateDir.
const HistoryFile = "history.jsonl"

// historyCap is the size at which history.jsonl is moved to history.jsonl.1
// before the next line is appended; so at most about twice this is kept.
const historyCap = 1 << 20

// historyLog appends one JSON line per ended Recovery. JSON lines survive a
// crash mid-write (only the last line is lost) and are read by jq.
type historyLog struct {
	path string
	cap  int64
	mu   sync.Mutex
}

func (h *historyLog) append(r Recovery) error {
	if h.path == "" {
		return nil
	}
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("history: %w", err)
	}
	line = append(line, '\n')
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(h.path), 0o700); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	if st, err := os.Stat(h.path); err == nil && st.Size()+int64(len(line)) > h.cap {
		if err := os.Rename(h.path, h.path+".1"); err != nil {
			return fmt.Errorf("history: rotate: %w", err)
		}
	}
	f, err := os.OpenFile(h.path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("history: %w", err)
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
		return fmt.Errorf("history: write %s: %w", h.path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("history: %w", err)
	}
	return nil
}

// read returns up to n recoveries (all if n <= 0), newest first. Lines that
// do not parse (a torn last line after a crash) are skipped.
func (h *historyLog) read(n int) ([]Recovery, error) {
	if h.path == "" {
		return nil, nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	var all []Recovery
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
			var r Recovery
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
