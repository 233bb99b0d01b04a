package watcher

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/prometheus/procfs"
)

// checkOutdated tells whether a bus daemon runs code that was replaced on disk
// after it started, as after a security update of dbus: its executable or a
// library it loaded. daemon is the Up event's Peer.
//
// Where the daemon's /proc is readable (the session bus, ours) it looks the
// way needrestart does, for deleted mappings and a deleted exe. Where it is
// not (the system bus belongs to another user) it compares the daemon's
// start time with the change time of its executable and of the files of its
// package and of libdbus, from dpkg's file lists.
func checkOutdated(daemon Peer) (outdated bool, why string, err error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return false, "", fmt.Errorf("outdated check: %w", err)
	}
	proc, err := fs.Proc(daemon.PID)
	if err != nil {
		return false, "", fmt.Errorf("bus daemon pid %d: %w", daemon.PID, err)
	}
	if st, err := proc.Stat(); err != nil || uint64(st.Starttime) != daemon.StartTime {
		return false, "", fmt.Errorf("bus daemon pid %d is no longer the process that ran the bus", daemon.PID)
	}
	if maps, err := proc.ProcMaps(); err == nil {
		var replaced []string
		for _, m := range maps {
			if p, ok := strings.CutSuffix(m.Pathname, " (deleted)"); ok && isCode(p) && !slices.Contains(replaced, p) {
				replaced = append(replaced, p)
			}
		}
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", daemon.PID)); err == nil {
			if p, ok := strings.CutSuffix(exe, " (deleted)"); ok && !slices.Contains(replaced, p) {
				replaced = append([]string{p}, replaced...)
			}
		}
		if len(replaced) > 0 {
			return true, "replaced on disk since the bus started: " + strings.Join(replaced, ", "), nil
		}
		return false, "", nil
	}
	// Another user's daemon: judge by change times.
	return outdatedByTime(daemon, daemonFiles(daemon))
}

// outdatedByTime reports whether any of files changed after the daemon
// started.
func outdatedByTime(daemon Peer, files []string) (bool, string, error) {
	started, err := startedAt(daemon.StartTime)
	if err != nil {
		return false, "", err
	}
	for _, f := range files {
		var st syscall.Stat_t
		if err := syscall.Stat(f, &st); err != nil {
			continue
		}
		if ctime := time.Unix(st.Ctim.Unix()); ctime.After(started) {
			return true, fmt.Sprintf("%s changed at %s, after the bus started at %s", f, ctime.Format(time.DateTime), started.Format(time.DateTime)), nil
		}
	}
	return false, "", nil
}

// isCode reports whether a mapped file is code the daemon runs, not a
// deleted cache or shared memory file.
func isCode(path string) bool {
	return strings.Contains(path, ".so") || strings.Contains(path, "/bin/") || strings.Contains(path, "/libexec/")
}

// daemonFiles returns the files whose replacement makes the bus daemon
// outdated: its executable, the code files of its Debian package and of
// libdbus. The executable comes first.
func daemonFiles(daemon Peer) []string {
	exe := strings.TrimSuffix(daemon.Exe, " (deleted)")
	if exe == "" && len(daemon.Argv) > 0 && filepath.IsAbs(daemon.Argv[0]) {
		exe = daemon.Argv[0]
	}
	// Reading dpkg's lists costs milliseconds of CPU, and a bus restart
	// is when busmedic needs the CPU for the apps: the answer is kept
	// until dpkg's database changes.
	stamp := dpkgStamp()
	filesCache.Lock()
	defer filesCache.Unlock()
	if c, ok := filesCache.byExe[exe]; ok && c.stamp == stamp {
		return slices.Clone(c.files)
	}
	files := readDaemonFiles(exe)
	if filesCache.byExe == nil {
		filesCache.byExe = map[string]cachedFiles{}
	}
	filesCache.byExe[exe] = cachedFiles{stamp: stamp, files: files}
	return slices.Clone(files)
}

type cachedFiles struct {
	stamp time.Time
	files []string
}

var filesCache struct {
	sync.Mutex
	byExe map[string]cachedFiles
}

// dpkgStamp is the change time of dpkg's database directory, which changes
// whenever a package is installed or removed.
func dpkgStamp() time.Time {
	var st syscall.Stat_t
	if err := syscall.Stat("/var/lib/dpkg/info", &st); err != nil {
		return time.Time{}
	}
	return time.Unix(st.Ctim.Unix())
}

// readDaemonFiles finds the files that daemonFiles caches, reading dpkg's
// lists.
func readDaemonFiles(exe string) []string {
	var files []string
	if exe != "" {
		files = append(files, exe)
	}
	lists, _ := filepath.Glob("/var/lib/dpkg/info/libdbus-1-3*.list")
	if pkg := packageList(exe); pkg != "" {
		lists = append([]string{pkg}, lists...)
	}
	for _, l := range lists {
		for _, f := range readList(l) {
			if (isCode(f) || f == exe) && !slices.Contains(files, f) {
				if fi, err := os.Stat(f); err == nil && fi.Mode().IsRegular() {
					files = append(files, f)
				}
			}
		}
	}
	return files
}

// packageList returns dpkg's file list of the package that ships file.
func packageList(file string) string {
	if file == "" {
		return ""
	}
	lists, _ := filepath.Glob("/var/lib/dpkg/info/*.list")
	// The daemon's own package is likely named after it; look there first.
	base := filepath.Base(file)
	slices.SortStableFunc(lists, func(a, b string) int {
		ha, hb := strings.Contains(filepath.Base(a), base), strings.Contains(filepath.Base(b), base)
		switch {
		case ha && !hb:
			return -1
		case hb && !ha:
			return 1
		}
		return 0
	})
	for _, l := range lists {
		if slices.Contains(readList(l), file) {
			return l
		}
	}
	return ""
}

func readList(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

// startedAt turns a start time in clock ticks since boot into a time.
func startedAt(ticks uint64) (time.Time, error) {
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return time.Time{}, err
	}
	st, err := fs.Stat()
	if err != nil {
		return time.Time{}, fmt.Errorf("boot time: %w", err)
	}
	// Linux reports these in USER_HZ, which is 100 on every architecture
	// busmedic runs on.
	const userHZ = 100
	return time.Unix(int64(st.BootTime), 0).Add(time.Duration(ticks) * time.Second / userHZ), nil
}

// fileWatch follows files that may be replaced, such as the bus daemon's
// executable and libraries during a package update. It watches the files'
// directories on the Watcher's dirWatch, so a file that dpkg replaces by
// renaming a new one over it is still followed afterwards; the reader of
// the dirWatch's events hands them over with offer.
type fileWatch struct {
	dirs *dirWatch
	// changed holds the latest change not yet taken by Run: of a burst,
	// Run reports only the last anyway, and offer must never block the
	// reader, which serves the whole connection. "" is a change of no
	// known file.
	changed chan string

	mu      sync.Mutex
	want    map[string]bool
	watched []string // directories held on dirs
}

func newFileWatch(dirs *dirWatch) *fileWatch {
	return &fileWatch{dirs: dirs, changed: make(chan string, 1)}
}

// watch starts watching files: changes from now on are reported by Run,
// until stop.
func (w *fileWatch) watch(files []string) error {
	want := map[string]bool{}
	var dirs []string
	for _, f := range files {
		want[filepath.Clean(f)] = true
		if d := filepath.Dir(f); !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	if err := w.dirs.add(dirs...); err != nil {
		return fmt.Errorf("watch files: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.want, w.watched = want, dirs
	return nil
}

// stop lets go of the directories.
func (w *fileWatch) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dirs.remove(w.watched...)
	w.want, w.watched = nil, nil
}

// offer hands over an event of the dirWatch, which may concern other
// files; a nil fileWatch takes none.
func (w *fileWatch) offer(ev fsnotify.Event) {
	if w == nil || ev.Has(fsnotify.Chmod) && !ev.Has(fsnotify.Write) {
		return
	}
	name := filepath.Clean(ev.Name)
	w.mu.Lock()
	wanted := w.want[name]
	w.mu.Unlock()
	if !wanted {
		return
	}
	// One sender: once the stale change is taken out, the send fits.
	for {
		select {
		case w.changed <- name:
			return
		default:
		}
		select {
		case <-w.changed:
		default:
		}
	}
}

// lost tells the watch that events may have been lost: it checks again,
// naming no file, unless a named change is due anyway.
func (w *fileWatch) lost() {
	if w == nil {
		return
	}
	select {
	case w.changed <- "":
	default:
	}
}

// Run calls changed, once per burst of changes, whenever a watched file is
// replaced, written or removed, until ctx is done. file is "" after lost
// events.
func (w *fileWatch) Run(ctx context.Context, changed func(file string)) {
	// dpkg unpacks a whole package in a burst; report once it settles.
	const settle = 200 * time.Millisecond
	var pending string
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case f := <-w.changed:
			if f != "" {
				pending = f
			}
			timer.Reset(settle)
		case <-timer.C:
			changed(pending)
			pending = ""
		}
	}
}
