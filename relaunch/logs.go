package relaunch

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// logCheckEvery is how often, at most, capLogs looks at the apps' logs.
const logCheckEvery = time.Minute

// capLogs keeps the logs of the apps busmedic started under their limit
// while the apps run. The apps write to plain files they keep open when
// busmedic exits (see startProcess), so a log cannot be rotated by renaming
// it: the app would write on into the renamed file. Instead a log over the
// limit is copied to .1 and emptied, and the app, which appends, writes on
// from the start; what it writes between the copy and the emptying is lost.
// It runs when busmedic is awake for a bus event anyway, at most once per
// logEvery: a quiet session wakes nobody, and a busy one is checked often.
func (e *Engine) capLogs(now time.Time) {
	if e.cfg.StateDir == "" || now.Sub(e.logsChecked) < e.cfg.logEvery {
		return
	}
	e.logsChecked = now
	dir := filepath.Join(e.cfg.StateDir, "logs")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return // no app started yet
	}
	for _, de := range entries {
		if !strings.HasSuffix(de.Name(), ".log") {
			continue
		}
		info, err := de.Info()
		if err != nil || !info.Mode().IsRegular() || info.Size() <= e.cfg.logLimit {
			continue
		}
		path := filepath.Join(dir, de.Name())
		if err := capLog(path); err != nil {
			e.log.Warn("app log not capped", "log", path, "err", err)
			continue
		}
		e.log.Info("app log capped; the older part is in .1", "log", path, "size", info.Size())
	}
}

// capLog copies path to path.1 and empties path.
func capLog(path string) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(path+".1", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy to %s.1: %w", path, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copy to %s.1: %w", path, err)
	}
	if err := os.Truncate(path, 0); err != nil {
		return fmt.Errorf("empty: %w", err)
	}
	return nil
}
