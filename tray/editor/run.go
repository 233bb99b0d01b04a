package editor

import (
	"context"
	"log/slog"
	"os"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/app"

	"busmedic/assets"
	"busmedic/icontheme"
)

// AppID is the editor's application id, as in FyneApp.toml and its desktop
// file: assets.EditorID.
const AppID = assets.EditorID

// Run shows the editor in its own Fyne app until the window is closed.
// The end of ctx (Ctrl-C, SIGTERM) closes it as the window's close button
// does: with unsaved changes, the user is asked first. shown, if not nil,
// is called once the window is on screen.
// Without a display to show it on, it returns ErrNoDisplay, or an error
// that names the display it could not open, before Fyne starts.
func Run(ctx context.Context, opts Options, shown func()) error {
	disp, err := openDisplay(os.Getenv)
	if err != nil {
		return err
	}
	if opts.IconTheme == "" {
		var from string
		opts.IconTheme, from = icontheme.CurrentTheme(ctx, disp.iconTheme)
		log := opts.Logger
		if log == nil {
			log = slog.Default()
		}
		log.Debug("icon theme", "theme", opts.IconTheme, "from", from)
	}
	a := app.NewWithID(AppID)
	a.SetIcon(fyne.NewStaticResource("busmedic.png", assets.PNG(assets.Healthy, 64)))
	ed := newEditor(ctx, a, opts)
	ed.Window().SetMaster()
	if shown != nil {
		a.Lifecycle().SetOnStarted(shown)
	}
	defer closeWhenDone(ctx, ed)()
	ed.Window().ShowAndRun()
	ed.stop()
	return nil
}

// closeWhenDone closes the editor's window as its close button does once
// ctx is done, and returns the function that stops it.
func closeWhenDone(ctx context.Context, ed *editor) (stop func() bool) {
	return context.AfterFunc(ctx, func() { ed.post(ed.requestClose) })
}
