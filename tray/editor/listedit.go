package editor

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"
)

// stringList edits a list of strings (names, exec, hook, after): one entry
// per row with a remove button, and an add button. Blank rows are allowed
// while typing and left out of the rule.
type stringList struct {
	box         *fyne.Container
	add         *widget.Button
	rows        []*widget.Entry
	placeholder string
	disabled    bool
	onChanged   func([]string)
	focus       func(fyne.Focusable)
}

func newStringList(placeholder, addLabel string, focus func(fyne.Focusable), onChanged func([]string)) *stringList {
	l := &stringList{box: container.NewVBox(), placeholder: placeholder, onChanged: onChanged, focus: focus}
	l.add = widget.NewButtonWithIcon(addLabel, theme.ContentAddIcon(), func() {
		l.rows = append(l.rows, l.newRow(""))
		l.rebuild()
		l.changed()
		l.focus(l.rows[len(l.rows)-1])
	})
	l.rebuild()
	return l
}

func (l *stringList) newRow(text string) *widget.Entry {
	e := widget.NewEntry()
	e.SetPlaceHolder(l.placeholder)
	e.SetText(text)
	e.OnChanged = func(string) { l.changed() }
	return e
}

// set shows vals without reporting a change.
func (l *stringList) set(vals []string) {
	l.rows = nil
	for _, v := range vals {
		l.rows = append(l.rows, l.newRow(v))
	}
	l.rebuild()
}

func (l *stringList) values() []string {
	out := make([]string, len(l.rows))
	for i, e := range l.rows {
		out[i] = e.Text
	}
	return out
}

func (l *stringList) changed() {
	if l.onChanged != nil {
		l.onChanged(l.values())
	}
}

func (l *stringList) setDisabled(d bool) {
	l.disabled = d
	l.rebuild()
}

func (l *stringList) rebuild() {
	objs := make([]fyne.CanvasObject, 0, len(l.rows)+1)
	for i, e := range l.rows {
		rm := widget.NewButtonWithIcon("", theme.ContentRemoveIcon(), func() {
			l.rows = append(l.rows[:i:i], l.rows[i+1:]...)
			l.rebuild()
			l.changed()
		})
		setEnabled(e, !l.disabled)
		setEnabled(rm, !l.disabled)
		objs = append(objs, container.NewBorder(nil, nil, nil, rm, e))
	}
	setEnabled(l.add, !l.disabled)
	objs = append(objs, container.NewHBox(l.add))
	l.box.Objects = objs
	l.box.Refresh()
}

// kvList edits env: a key entry and a value entry per row.
type kvList struct {
	box       *fyne.Container
	add       *widget.Button
	rows      [][2]*widget.Entry
	disabled  bool
	onChanged func([]kv)
	focus     func(fyne.Focusable)
}

func newKVList(focus func(fyne.Focusable), onChanged func([]kv)) *kvList {
	l := &kvList{box: container.NewVBox(), onChanged: onChanged, focus: focus}
	l.add = widget.NewButtonWithIcon("Add variable", theme.ContentAddIcon(), func() {
		l.rows = append(l.rows, l.newRow(kv{}))
		l.rebuild()
		l.changed()
		l.focus(l.rows[len(l.rows)-1][0])
	})
	l.rebuild()
	return l
}

func (l *kvList) newRow(kv kv) [2]*widget.Entry {
	k, v := widget.NewEntry(), widget.NewEntry()
	k.SetPlaceHolder("NAME")
	v.SetPlaceHolder("value")
	k.SetText(kv.Key)
	v.SetText(kv.Value)
	k.OnChanged = func(string) { l.changed() }
	v.OnChanged = func(string) { l.changed() }
	return [2]*widget.Entry{k, v}
}

func (l *kvList) set(kvs []kv) {
	l.rows = nil
	for _, kv := range kvs {
		l.rows = append(l.rows, l.newRow(kv))
	}
	l.rebuild()
}

func (l *kvList) values() []kv {
	out := make([]kv, len(l.rows))
	for i, r := range l.rows {
		out[i] = kv{r[0].Text, r[1].Text}
	}
	return out
}

func (l *kvList) changed() {
	if l.onChanged != nil {
		l.onChanged(l.values())
	}
}

func (l *kvList) setDisabled(d bool) {
	l.disabled = d
	l.rebuild()
}

func (l *kvList) rebuild() {
	objs := make([]fyne.CanvasObject, 0, len(l.rows)+1)
	for i, r := range l.rows {
		rm := widget.NewButtonWithIcon("", theme.ContentRemoveIcon(), func() {
			l.rows = append(l.rows[:i:i], l.rows[i+1:]...)
			l.rebuild()
			l.changed()
		})
		for _, w := range []fyne.Disableable{r[0], r[1], rm} {
			setEnabled(w, !l.disabled)
		}
		objs = append(objs, container.NewBorder(nil, nil, nil, rm,
			container.NewGridWithColumns(2, r[0], r[1])))
	}
	setEnabled(l.add, !l.disabled)
	objs = append(objs, container.NewHBox(l.add))
	l.box.Objects = objs
	l.box.Refresh()
}

func setEnabled(w fyne.Disableable, on bool) {
	if on {
		w.Enable()
	} else {
		w.Disable()
	}
}
