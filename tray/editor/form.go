package editor

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"

	"busmedic/appdb"
)

// durationField is a number and a unit select.
type durationField struct {
	value *widget.Entry
	unit  *widget.Select
	box   fyne.CanvasObject
}

func newDurationField(onChanged func(duration)) *durationField {
	f := &durationField{value: widget.NewEntry(), unit: widget.NewSelect(units, nil)}
	emit := func() { onChanged(duration{Value: f.value.Text, Unit: f.unit.Selected}) }
	f.value.OnChanged = func(string) { emit() }
	f.unit.OnChanged = func(string) { emit() }
	f.box = container.NewBorder(nil, nil, nil, f.unit, f.value)
	return f
}

func (f *durationField) set(d duration) {
	f.value.SetText(d.Value)
	f.unit.SetSelected(d.Unit)
}

func (f *durationField) setDisabled(d bool) {
	setEnabled(f.value, !d)
	setEnabled(f.unit, !d)
}

// fieldMessages shows a field's error and warning beneath it.
type fieldMessages struct {
	err, warn *widget.Label
}

func newFieldMessages() fieldMessages {
	m := fieldMessages{err: widget.NewLabel(""), warn: widget.NewLabel("")}
	m.err.Importance = widget.DangerImportance
	m.warn.Importance = widget.WarningImportance
	for _, l := range []*widget.Label{m.err, m.warn} {
		l.Wrapping = fyne.TextWrapWord
		l.Hide()
	}
	return m
}

func (m fieldMessages) show(err, warn string) {
	showLabel(m.err, err)
	showLabel(m.warn, warn)
}

func showLabel(l *widget.Label, text string) {
	if l.Text != text {
		l.SetText(text)
	}
	if text == "" {
		l.Hide()
	} else {
		l.Show()
	}
}

// ruleForm holds one widget per key of an [[app]] table (appdb.RuleKeys),
// and where each key's error shows.
type ruleForm struct {
	id, name, icon, desktop *widget.Entry
	bus                     *widget.Select
	names                   *stringList
	exe, argv0, cmdline     *widget.Entry
	action                  *widget.Select
	signal                  *widget.SelectEntry
	hook, exec              *stringList
	shell                   *widget.Check
	env                     *kvList
	workdir, unit           *widget.Entry
	after                   *stringList
	grace, readyTimeout     *durationField
	stopTimeout             *durationField
	maxRestarts             *widget.Entry
	restartWindow           *durationField
	enabled                 *widget.Check

	messages map[string]fieldMessages // by key; "" for the rule as a whole
	content  fyne.CanvasObject
}

var signals = []string{"SIGHUP", "SIGUSR1", "SIGUSR2", "SIGTERM", "SIGINT"}

// newRuleForm builds the widgets; changed is called with the draft after
// every edit.
func newRuleForm(focus func(fyne.Focusable), changed func(func(*draft))) *ruleForm {
	f := &ruleForm{messages: map[string]fieldMessages{}}
	keys := appdb.RuleKeys()
	choices := map[string][]string{} // the options of the selects
	for _, k := range keys {
		choices[k.Name] = k.Choices
	}
	text := func(set func(*draft, string)) *widget.Entry {
		e := widget.NewEntry()
		e.OnChanged = func(s string) { changed(func(d *draft) { set(d, s) }) }
		return e
	}
	f.id = text(func(d *draft, s string) { d.ID = s })
	f.name = text(func(d *draft, s string) { d.Name = s })
	f.icon = text(func(d *draft, s string) { d.Icon = s })
	f.desktop = text(func(d *draft, s string) { d.Desktop = s })
	f.bus = widget.NewSelect(choices["bus"], func(s string) { changed(func(d *draft) { d.Bus = s }) })
	f.names = newStringList("org.example.App", "Add name", focus, func(v []string) { changed(func(d *draft) { d.Names = v }) })
	f.exe = text(func(d *draft, s string) { d.Exe = s })
	f.exe.SetPlaceHolder("/usr/bin/app")
	f.argv0 = text(func(d *draft, s string) { d.Argv0 = s })
	f.cmdline = text(func(d *draft, s string) { d.Cmdline = s })
	f.action = widget.NewSelect(choices["action"], func(s string) { changed(func(d *draft) { d.Action = s }) })
	f.signal = widget.NewSelectEntry(signals)
	f.signal.OnChanged = func(s string) { changed(func(d *draft) { d.Signal = s }) }
	f.hook = newStringList("argument", "Add argument", focus, func(v []string) { changed(func(d *draft) { d.Hook = v }) })
	f.exec = newStringList("argument", "Add argument", focus, func(v []string) { changed(func(d *draft) { d.Exec = v }) })
	f.shell = widget.NewCheck("through /bin/sh -c", func(b bool) { changed(func(d *draft) { d.Shell = b }) })
	f.env = newKVList(focus, func(v []kv) { changed(func(d *draft) { d.Env = v }) })
	f.workdir = text(func(d *draft, s string) { d.Workdir = s })
	f.unit = text(func(d *draft, s string) { d.Unit = s })
	f.unit.SetPlaceHolder("app-foo@autostart.service")
	f.after = newStringList("org.freedesktop.NetworkManager", "Add name", focus, func(v []string) { changed(func(d *draft) { d.After = v }) })
	f.grace = newDurationField(func(v duration) { changed(func(d *draft) { d.Grace = v }) })
	f.readyTimeout = newDurationField(func(v duration) { changed(func(d *draft) { d.ReadyTimeout = v }) })
	f.stopTimeout = newDurationField(func(v duration) { changed(func(d *draft) { d.StopTimeout = v }) })
	f.maxRestarts = text(func(d *draft, s string) { d.MaxRestarts = s })
	f.restartWindow = newDurationField(func(v duration) { changed(func(d *draft) { d.RestartWindow = v }) })
	f.enabled = widget.NewCheck("enabled", func(b bool) { changed(func(d *draft) { d.Enabled = b }) })

	// One item per key, in the documented order, with the key's hint.
	widgets := f.widgets()
	form := widget.NewForm()
	for _, k := range keys {
		if widgets[k.Name] == nil {
			panic("editor: the rule form has no field for key " + k.Name)
		}
		m := newFieldMessages()
		f.messages[k.Name] = m
		item := widget.NewFormItem(k.Name, container.NewVBox(widgets[k.Name], m.err, m.warn))
		item.HintText = k.Hint
		form.AppendItem(item)
	}
	whole := newFieldMessages()
	f.messages[""] = whole
	f.content = container.NewVBox(whole.err, whole.warn, form)
	return f
}

// widgets returns the widget that edits each key, by key.
func (f *ruleForm) widgets() map[string]fyne.CanvasObject {
	return map[string]fyne.CanvasObject{
		"id": f.id, "name": f.name, "icon": f.icon, "desktop": f.desktop, "bus": f.bus,
		"names": f.names.box, "exe": f.exe, "argv0": f.argv0, "cmdline": f.cmdline,
		"action": f.action, "signal": f.signal, "hook": f.hook.box, "exec": f.exec.box,
		"unit": f.unit, "shell": f.shell, "env": f.env.box, "workdir": f.workdir, "after": f.after.box,
		"grace": f.grace.box, "ready_timeout": f.readyTimeout.box, "stop_timeout": f.stopTimeout.box,
		"max_restarts": f.maxRestarts, "restart_window": f.restartWindow.box, "enabled": f.enabled,
	}
}

// set shows a draft. The widgets' change callbacks fire; the caller
// ignores them while loading.
func (f *ruleForm) set(d draft) {
	f.id.SetText(d.ID)
	f.name.SetText(d.Name)
	f.icon.SetText(d.Icon)
	f.desktop.SetText(d.Desktop)
	f.bus.SetSelected(d.Bus)
	f.names.set(d.Names)
	f.exe.SetText(d.Exe)
	f.argv0.SetText(d.Argv0)
	f.cmdline.SetText(d.Cmdline)
	f.action.SetSelected(d.Action)
	f.signal.SetText(d.Signal)
	f.hook.set(d.Hook)
	f.unit.SetText(d.Unit)
	f.exec.set(d.Exec)
	f.shell.SetChecked(d.Shell)
	f.env.set(d.Env)
	f.workdir.SetText(d.Workdir)
	f.after.set(d.After)
	f.grace.set(d.Grace)
	f.readyTimeout.set(d.ReadyTimeout)
	f.stopTimeout.set(d.StopTimeout)
	f.maxRestarts.SetText(d.MaxRestarts)
	f.restartWindow.set(d.RestartWindow)
	f.enabled.SetChecked(d.Enabled)
}

// setReadOnly disables every field, for a system rule.
func (f *ruleForm) setReadOnly(ro bool) {
	for _, w := range []fyne.Disableable{f.id, f.name, f.icon, f.desktop, f.bus, f.exe, f.argv0, f.cmdline,
		f.action, f.signal, f.unit, f.shell, f.workdir, f.maxRestarts, f.enabled} {
		setEnabled(w, !ro)
	}
	f.names.setDisabled(ro)
	f.hook.setDisabled(ro)
	f.exec.setDisabled(ro)
	f.after.setDisabled(ro)
	f.env.setDisabled(ro)
	for _, d := range []*durationField{f.grace, f.readyTimeout, f.stopTimeout, f.restartWindow} {
		d.setDisabled(ro)
	}
}

// showProblems puts each problem at its field.
func (f *ruleForm) showProblems(errs, warns problems) {
	for k, m := range f.messages {
		m.show(errs[k], warns[k])
	}
	// A key the form has no field for (should not happen) shows on top.
	var extraErr, extraWarn string
	for k, v := range errs {
		if _, ok := f.messages[k]; !ok {
			extraErr += k + ": " + v + "\n"
		}
	}
	for k, v := range warns {
		if _, ok := f.messages[k]; !ok {
			extraWarn += k + ": " + v + "\n"
		}
	}
	if extraErr != "" || extraWarn != "" {
		f.messages[""].show(errs[""]+extraErr, warns[""]+extraWarn)
	}
}
