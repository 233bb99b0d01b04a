package relaunch

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// logCheckEvery is how often, at most, capLogs looks at the apps' logs.
const logCheckEvery = time.Minute

// capLogs keeps the logs of the apps busmedic started near their limit
// while the apps run. The apps write to plain files they keep open when
// busmedic exits (see startProcess), so a log cannot be rotated by renaming
// it: the app would write on into the renamed file. Instead the last limit
// bytes of a log over the limit go to .1 and the log is emptied; the app,
// which appends, writes on from the start. What it writes between the copy
// and the emptying is lost. It runs when busmedic is awake for a bus event
// anyway, at most once per logEvery: a quiet session wakes nobody (and its
// logs grow until the next event), a busy one is checked often.
//
// It also tells when the logs cannot be written (apps then start with
// their output to /dev/null, see startProcess): a warning once per kind of
// failure, not at every look, and a word when they can be written again.
func (e *Engine) capLogs(now time.Time) {
	if e.cfg.StateDir == "" || now.Sub(e.logsChecked) < e.cfg.logEvery {
		return
	}
	e.logsChecked = now
	dir := filepath.Join(e.cfg.StateDir, "logs")
	trouble := &e.hist.logTrouble
	failed := false
	warn := func(kind, msg string, args ...any) {
		failed = true
		if trouble.failed(kind) {
			e.log.Warn(msg+" (said once until it works again)", args...)
		}
	}
	defer func() {
		if !failed && trouble.ok() {
			e.log.Info("app logs can be written again", "dir", dir)
		}
	}()
	if err := logsWritable(e.cfg.StateDir, dir); err != nil {
		warn("logs: "+errnoText(err), "app logs cannot be written: apps busmedic starts write their output to /dev/null",
			"dir", dir, "err", err)
		return
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return // no app started yet
	}
	for _, de := range entries {
		if !strings.HasSuffix(de.Name(), ".log") || !de.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, de.Name())
		size, err := capLog(path, e.cfg.logLimit)
		if err != nil {
			warn("cap: "+errnoText(err), "app log not capped", "log", path, "err", err)
		} else if size > 0 {
			e.log.Info("app log capped; its end is in .1", "log", path, "size", size)
		}
	}
}

// logsWritable reports why the apps' logs in dir, in the state directory
// state, cannot be written, or nil: dir (or, before it exists, state) is
// not a directory we may write, or its file system is full. It creates
// nothing: startProcess does when it starts an app.
func logsWritable(state, dir string) error {
	for _, d := range []string{dir, state} {
		st, err := os.Stat(d)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if !st.IsDir() {
			return &fs.PathError{Op: "use", Path: d, Err: syscall.ENOTDIR}
		}
		if err := unix.Access(d, unix.W_OK|unix.X_OK); err != nil {
			return &fs.PathError{Op: "write in", Path: d, Err: err}
		}
		var sfs unix.Statfs_t
		if err := unix.Statfs(d, &sfs); err == nil && sfs.Blocks > 0 && sfs.Bavail == 0 {
			return &fs.PathError{Op: "write in", Path: d, Err: syscall.ENOSPC}
		}
		return nil
	}
	return nil
}

// withLogWarning adds to the reason of r why the output of c, an app or a
// hook just started, went to /dev/null rather than to its log, if it did
// (see startProcess). The app started: the outcome stays.
func (r result) withLogWarning(c *child) result {
	if c == nil || c.logWarning == "" {
		return r
	}
	if r.reason == "" {
		r.reason = c.logWarning
	} else {
		r.reason += "; " + c.logWarning
	}
	return r
}

// capLog empties the log at path if it is over limit, after keeping its
// last limit bytes in path.1, and returns the size it had (0 if it was not
// over). It works on the file it opened, so that a new start of the app,
// which moves path to path.1 and begins a fresh path, can only make it cap
// the old file, and it follows no symlink.
func capLog(path string, limit int64) (int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOFOLLOW, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if !st.Mode().IsRegular() || st.Size() <= limit {
		return 0, nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".1.*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name()) // after the rename, nothing to remove
	if _, err := io.Copy(tmp, io.NewSectionReader(f, st.Size()-limit, limit)); err != nil {
		tmp.Close()
		return 0, fmt.Errorf("copy the end of %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return 0, fmt.Errorf("copy the end of %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path+".1"); err != nil {
		return 0, err
	}
	if err := f.Truncate(0); err != nil {
		return 0, fmt.Errorf("empty %s: %w", path, err)
	}
	return st.Size(), nil
}
