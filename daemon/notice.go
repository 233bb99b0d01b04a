package daemon

import (
	"errors"
	"log/slog"
	"os/exec"
	"syscall"

	"busmedic/relaunch"
	"busmedic/relaunch/control"
)

// notice is a desktop notification: its actions are key and label pairs,
// as the notification server takes them.
type notice struct {
	title, body string
	actions     []string
}

// showAction is the key of the recovery notification's "Show", which
// opens the recovery history.
const showAction = "show"

// recoveryNotice is the one notification shown when recovery r has ended.
// update and fromUpdate are busrestart.Policy.ReportFor's answer: when r
// followed a restart busmedic made to finish a dbus update, its report
// ("D-Bus updated without reboot: …") is told instead of relaunch.Summary's
// line. ok is false when there is nothing worth telling.
func recoveryNotice(r control.Recovery, update string, fromUpdate bool) (n notice, ok bool) {
	body, ok := update, fromUpdate
	if !ok {
		body, ok = relaunch.Summary(r)
	}
	if !ok {
		return notice{}, false
	}
	return notice{title: "busmedic", body: body, actions: []string{showAction, "Show"}}, true
}

// showHistory opens the rules editor that findEditor finds, whose History
// tab tells what each recovery did; it runs on its own, past busmedic's
// exit.
func showHistory(findEditor func() (string, error), socket string, log *slog.Logger) {
	editor, err := "", errors.New("busmedic run was given no way to find it")
	if findEditor != nil {
		editor, err = findEditor()
	}
	if err != nil {
		log.Info("cannot show the history: rules editor not installed; busmedic history tells it", "err", err)
		return
	}
	cmd := exec.Command(editor, "-control", socket)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		log.Warn("rules editor did not start", "err", err)
		return
	}
	go cmd.Wait() // reap it; it ends when the user closes it
}
