package relaunch_test

import (
	"strings"
	"testing"

	"busmedic/appdb"
	"busmedic/relaunch"
)

type sign struct {
	ending bool
	why    string
}

func (s sign) Ending() (bool, string) { return s.ending, s.why }

func TestIntent(t *testing.T) {
	closing := sign{true, "the login session is closing (logind)"}
	active := sign{}
	goneX := func() (bool, string) { return true, "the X server of DISPLAY=:1 no longer answers" }
	hereX := func() (bool, string) { return false, "" }
	recoverOnLogout := func() appdb.Settings { s := appdb.DefaultSettings(); s.RecoverOnLogout = true; return s }

	for _, tc := range []struct {
		name   string
		intent *relaunch.Intent
		setup  func(*relaunch.Intent)
		ending bool
		why    string
	}{
		{"a plain crash", &relaunch.Intent{Logind: active, Display: hereX}, nil, false, ""},
		{"session closing", &relaunch.Intent{Logind: closing, Display: hereX}, nil, true, "closing"},
		{"display gone", &relaunch.Intent{Logind: active, Display: goneX}, nil, true, "X server"},
		{"no logind, display gone", &relaunch.Intent{Display: goneX}, nil, true, "X server"},
		{"recover_on_logout", &relaunch.Intent{Logind: closing, Settings: recoverOnLogout}, nil, false, "recover_on_logout"},
		{"ordered restart", &relaunch.Intent{Logind: closing}, func(i *relaunch.Intent) { i.Ordered("session") }, false, "ordered by busmedic"},
		{"ordered restart of the other bus", &relaunch.Intent{Logind: closing}, func(i *relaunch.Intent) { i.Ordered("system") }, true, "closing"},
		{"ordered restart that failed", &relaunch.Intent{Logind: closing}, func(i *relaunch.Intent) { i.Ordered("session")() }, true, "closing"},
		{"failed order, then a new one", &relaunch.Intent{Logind: closing}, func(i *relaunch.Intent) {
			withdraw := i.Ordered("session")
			i.Ordered("session")
			withdraw()
		}, false, "ordered by busmedic"},
		{"busmedic stopping", &relaunch.Intent{Logind: active}, func(i *relaunch.Intent) { i.Stopping("busmedic received SIGTERM") }, true, "SIGTERM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup(tc.intent)
			}
			ended := tc.intent.Ended()
			ending, why := tc.intent.Ending("session")
			if ending != tc.ending || !strings.Contains(why, tc.why) {
				t.Errorf("Ending = %v %q, want %v and a reason with %q", ending, why, tc.ending, tc.why)
			}
			select {
			case <-ended:
				if !tc.ending {
					t.Error("Ended closed though the session is not ending")
				}
			default:
				if tc.ending {
					t.Error("Ended not closed")
				}
			}
		})
	}
}
