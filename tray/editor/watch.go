package editor

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// settle is how long the file must stay quiet before a change is reported:
// an editor's save is several events (write the temporary file, rename it).
const settle = 100 * time.Millisecond

// watchFile calls changed after the file at path was created, written,
// renamed or removed, once per burst of events, until ctx is done. It
// watches the file's directory, as fsnotify recommends, because editors
// and appdb replace the file by renaming another over it. The directory is
// created (mode 0700) if missing, as appdb's Save would.
func watchFile(ctx context.Context, path string, log *slog.Logger, changed func()) error {
	dir, name := filepath.Split(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("watch %s: %w", path, err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", path, err)
	}
	defer w.Close()
	if err := w.Add(filepath.Clean(dir)); err != nil {
		return fmt.Errorf("watch %s: %w", path, err)
	}
	timer := time.NewTimer(settle)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if filepath.Base(ev.Name) == name {
				timer.Reset(settle)
			}
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			log.Warn("watching the rules file", "path", path, "err", err)
		case <-timer.C:
			changed()
		}
	}
}
