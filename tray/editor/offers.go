package editor

import (
	"context"
	"fmt"
	"slices"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"busmedic/appdb"
	"busmedic/relaunch/control"
)

// offerRow is one offer shown at the top of the rules list.
type offerRow struct {
	offer appdb.Offer
	text  *widget.Label
	why   *widget.Button
	add   *widget.Button
	later *widget.Button
}

// refreshOffers asks the daemon who is on the session bus and shows the
// catalog apps among them that no rule on disk covers. One request runs at
// a time; a refresh asked for meanwhile runs when it ends.
func (e *editor) refreshOffers() {
	if e.status == nil || len(e.catalog) == 0 {
		e.showOffers(nil)
		return
	}
	if e.offersBusy {
		e.offersAgain = true
		return
	}
	e.offersBusy = true
	paths, catalog := e.model.paths, e.catalog
	background(e, func(ctx context.Context) ([]appdb.Offer, error) {
		var offers []appdb.Offer
		err := e.link.call(ctx, requestTimeout, func(ctx context.Context, c *control.Client) error {
			peers, err := c.Peers(ctx)
			if err != nil {
				return err
			}
			// The rules as saved: a file with errors covers nothing we
			// can tell, so nothing is offered until it is fixed.
			rules, err := appdb.Load(paths)
			if err != nil {
				return fmt.Errorf("load rules: %w", err)
			}
			offers = appdb.Offers(catalog, peers[string(appdb.BusSession)], rules)
			return nil
		})
		return offers, err
	}, func(offers []appdb.Offer, err error) {
		e.offersBusy = false
		if e.offersAgain {
			e.offersAgain = false
			e.refreshOffers()
			return
		}
		if err != nil {
			e.log.Debug("no rule offers", "err", err)
			offers = nil
		}
		if e.status == nil {
			offers = nil
		}
		e.showOffers(offers)
	})
}

// showOffers shows offers, less those the user put off, rebuilding the
// rows only when the apps offered changed.
func (e *editor) showOffers(offers []appdb.Offer) {
	offers = slices.DeleteFunc(offers, func(o appdb.Offer) bool { return e.notNow[o.App.ID] })
	same := slices.EqualFunc(offers, e.offerRows, func(o appdb.Offer, r offerRow) bool {
		return o.App.ID == r.offer.App.ID && o.Peer.PID == r.offer.Peer.PID
	})
	if same {
		return
	}
	e.offerRows = nil
	var objs []fyne.CanvasObject
	for _, o := range offers {
		r := e.newOfferRow(o)
		e.offerRows = append(e.offerRows, r)
		objs = append(objs, container.NewBorder(nil, nil, widget.NewIcon(theme.WarningIcon()), nil, r.text),
			container.NewHBox(r.why, r.add, r.later), widget.NewSeparator())
	}
	e.offerBox.Objects = objs
	e.offerBox.Refresh()
}

func (e *editor) newOfferRow(o appdb.Offer) offerRow {
	r := offerRow{offer: o}
	r.text = widget.NewLabel(fmt.Sprintf("%s is running and does not survive a bus restart.", o.App.Name))
	r.text.Wrapping = fyne.TextWrapWord
	r.why = widget.NewButton("Why…", func() {
		dialog.ShowInformation(o.App.Name, fmt.Sprintf("%s.\n\nHow this is known: %s", o.App.Why, o.App.Evidence), e.win)
	})
	r.add = widget.NewButtonWithIcon("Add rule", theme.ContentAddIcon(), func() {
		rule := o.Rule
		rule.Bus = appdb.BusSession
		e.addRule(rule, o.Peer)
	})
	r.add.Importance = widget.HighImportance
	r.later = widget.NewButton("Not now", func() {
		e.notNow[o.App.ID] = true
		var rest []appdb.Offer
		for _, r := range e.offerRows {
			rest = append(rest, r.offer)
		}
		e.showOffers(rest)
	})
	return r
}
