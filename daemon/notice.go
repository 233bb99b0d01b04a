package daemon

import (
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"busmedic/appdb"
	"busmedic/assets"
	"busmedic/icontheme"
	"busmedic/relaunch"
	"busmedic/relaunch/control"
)

// The sender of busmedic's notifications, as installed (make install,
// scripts/install-files): the desktop entry assets.ID + ".desktop" in
// applications/, and the icon busmedic in hicolor.
const (
	desktopEntry = assets.ID
	iconName     = "busmedic"
)

// appIcon returns the icon of busmedic's notifications: the name busmedic
// when the icon theme has it (busmedic is installed where the desktop
// looks), else a file:// URI of the icon installed beside the executable
// exe (a PREFIX outside XDG_DATA_DIRS), else "" (not installed). dirs are
// the icon base directories (icontheme.BaseDirs).
func appIcon(dirs []string, exe string) string {
	if icontheme.New(icontheme.Hicolor, dirs, nil).Find(iconName, 64, 1) != "" {
		return iconName
	}
	if exe == "" {
		return ""
	}
	// Where scripts/install-files puts it, under PREFIX/bin/busmedic's
	// PREFIX.
	share := filepath.Join(filepath.Dir(filepath.Dir(exe)), "share")
	for _, p := range []string{"icons/hicolor/64x64/apps/busmedic.png", "icons/hicolor/scalable/apps/busmedic.svg"} {
		if st, err := os.Stat(filepath.Join(share, p)); err == nil && st.Mode().IsRegular() {
			return "file://" + filepath.Join(share, p)
		}
	}
	return ""
}

// showAction is the key of the recovery notification's "Show", which
// opens the recovery history.
const showAction = "show"

// recoveryNotice is the one notification shown when recovery r has ended.
// update and fromUpdate are busrestart.Policy.ReportFor's answer: when r
// followed a restart busmedic made to finish a dbus update, its report
// ("D-Bus updated without reboot: …") is told instead of relaunch.Summary's
// line. ok is false when there is nothing worth telling. It is critical
// when an app needs attention.
func recoveryNotice(r control.Recovery, update string, fromUpdate bool) (n relaunch.Notice, ok bool) {
	body, ok := update, fromUpdate
	if !ok {
		body, ok = relaunch.Summary(r)
	}
	if !ok {
		return relaunch.Notice{}, false
	}
	return relaunch.Notice{Title: "busmedic", Body: body, Critical: needsAttention(r),
		Actions: []relaunch.Action{{Key: showAction, Label: "Show", Command: "busmedic history"}}}, true
}

// needsAttention tells whether an app of r needs the user: its recovery
// failed, or was skipped for reaching its restart limit. These are the
// apps relaunch.Summary counts as "needs attention".
func needsAttention(r control.Recovery) bool {
	for _, j := range r.Jobs {
		if j.Outcome == control.Failed || j.Outcome == control.Skipped && strings.Contains(j.Reason, "limit") {
			return true
		}
	}
	return false
}

// showHistory opens the rules editor that findEditor finds, whose History
// tab tells what each recovery did; it runs on its own, past busmedic's
// exit.
func showHistory(findEditor func() (string, error), socket, rules string, log *slog.Logger) {
	editor, err := "", errors.New("busmedic run was given no way to find it")
	if findEditor != nil {
		editor, err = findEditor()
	}
	if err != nil {
		log.Info("cannot show the history: rules editor not installed; busmedic history tells it", "err", err)
		return
	}
	cmd := exec.Command(editor, "-control", socket)
	cmd.Env = EditorEnv(os.Environ(), rules)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		log.Warn("rules editor did not start", "err", err)
		return
	}
	go cmd.Wait() // reap it; it ends when the user closes it
}

// EditorEnv is env for a rules editor that busmedic run, or its tray,
// starts: with the user rules file busmedic run was given (rules, "" for
// the default), so that the editor edits the file the daemon reads.
func EditorEnv(env []string, rules string) []string {
	if rules == "" {
		return env
	}
	if abs, err := filepath.Abs(rules); err == nil {
		rules = abs
	}
	env = slices.DeleteFunc(slices.Clone(env), func(kv string) bool { return strings.HasPrefix(kv, appdb.EnvConfig+"=") })
	return append(env, appdb.EnvConfig+"="+rules)
}
