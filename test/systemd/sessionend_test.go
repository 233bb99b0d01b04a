package systemd

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"busmedic/test/systemdtest"
)

// TestSessionEndFromLogind is the user logging out while busmedic runs: the
// real logind ends the login session, which stays "closing" while a process
// of it remains (Debian's KillUserProcesses=no), and then the session bus
// goes. busmedic must start none of the apps that fell off the bus again,
// say why, and leave.
//
// The session is a real one: su with a terminal (script gives it one),
// through PAM and pam_systemd, so logind makes a session of type tty. Of a
// user's sessions that are not closing, logind elects one the user's
// Display, a graphical one first, then a tty one, and keeps it Display
// while it closes unless another can take its place: this one is the
// user's Display, as a desktop session would be.
//
// busmedic runs in one of the ways it can: inside the session, as a
// desktop's autostart starts it, where logind finds its session by its pid;
// or in its user unit, in no session, where it follows the user's Display
// session, whether the user logged in before busmedic started or after (a
// lingering user's manager starts busmedic.service at boot).
func TestSessionEndFromLogind(t *testing.T) {
	for _, c := range []struct {
		name string
		// inSession starts busmedic from the session rather than in
		// busmedic.service; early starts busmedic.service before the
		// login.
		inSession, early bool
	}{
		{name: "in the session", inSession: true},
		{name: "in its unit, started after the login"},
		{name: "in its unit, started before the login", early: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := systemdtest.Boot(t, systemdtest.Options{})
			echo := sessionApps[0]
			m.User.WriteFile(".config/busmedic/apps.toml", []byte(rulesFor([]app{echo}, "1s")), 0o644)
			m.User.WriteUnit(echo.unit, echo.text)
			m.User.Run("systemctl", "--user", "start", echo.unit)

			var l loginSession
			// journal waits for a line of busmedic's.
			var journal func(pattern string, since time.Time) systemdtest.Entry
			switch {
			case c.inSession:
				// Detached from the terminal, as a desktop's
				// autostart is, so that only logind tells it of the
				// logout. Without XDG_SESSION_ID logind finds its
				// session by its pid (with it, by the id: the same
				// session).
				l = login(t, m, fmt.Sprintf("setsid -f systemd-cat -t busmedic env -u XDG_SESSION_ID %s run --no-tray </dev/null\n",
					systemdtest.BusmedicPath))
				journal = func(pattern string, since time.Time) systemdtest.Entry {
					t.Helper()
					return m.Root.WaitJournal(l.scope(), pattern, since, 30*time.Second)
				}
				journal(`following our login session.*session=`+regexp.QuoteMeta(l.path), l.opened)
			default:
				journal = func(pattern string, since time.Time) systemdtest.Entry {
					t.Helper()
					return m.User.WaitJournal("busmedic.service", pattern, since, 30*time.Second)
				}
				// A process the logout leaves behind, as a
				// desktop's often are: it keeps the session
				// "closing".
				leftover := "setsid -f sleep infinity </dev/null >/dev/null 2>&1\n"
				if c.early {
					started := time.Now()
					m.User.StartUnit("busmedic.service", nil, systemdtest.BusmedicPath, "run", "--no-tray")
					journal(`following only a shutdown`, started)
					l = login(t, m, leftover)
				} else {
					l = login(t, m, leftover)
					m.User.StartUnit("busmedic.service", nil, systemdtest.BusmedicPath, "run", "--no-tray")
				}
				journal(`following our user's display session.*session=`+regexp.QuoteMeta(l.path), l.opened)
			}
			s := &session{t: t, m: m, apps: []app{echo}}
			s.waitStatus(30*time.Second, "busmedic sees the app", s.allRunning)

			l.logout(t, m)
			restart := time.Now()
			m.User.Run("systemctl", "--user", "restart", "dbus.service")
			e := journal(`no recovery`, restart)
			if want := fmt.Sprintf("the login session %s is closing", l.path); !strings.Contains(e.Message, want) {
				t.Errorf("busmedic gave another reason for no recovery than %q: %s", want, e.Message)
			}
			// busmedic leaves with the session: nothing can start the
			// app after this.
			if c.inSession {
				// It was all that was left of the session.
				m.Root.WaitJournal("systemd-logind.service", `^Removed session `+regexp.QuoteMeta(l.id)+`\.$`, restart, 10*time.Second)
			} else {
				u := m.User.WaitUnit("busmedic.service", 10*time.Second, systemdtest.UnitState.Stopped)
				if u.ActiveState == "failed" {
					t.Errorf("busmedic.service ended as %s: systemd would start it again at the logout", u)
				}
			}
			if u := m.User.Unit(echo.unit); u.Running() {
				t.Errorf("%s runs again after the logout: %s", echo.unit, u)
			}
			if pid := s.owner(echo.name); pid != 0 {
				t.Errorf("%s is on the new session bus again after the logout (pid %d)", echo.name, pid)
			}
		})
	}
}

// loginSession is a login session of the user's.
type loginSession struct {
	id     string
	path   string
	main   int // the process whose end is the logout
	opened time.Time
}

func (l loginSession) scope() string { return "session-" + l.id + ".scope" }

// login opens a login session for the user as a terminal login does: su -
// with a terminal (script gives it one), through PAM and pam_systemd, in a
// unit of root's (the system manager places the session in its own scope).
// The session runs the shell lines program, then waits: it ends when its
// main process is ended. login checks that logind made the session the
// user's Display.
func login(t *testing.T, m *systemdtest.Machine, program string) loginSession {
	t.Helper()
	l := loginSession{opened: time.Now()}
	// The main process tells its pid through the journal and stays: the
	// journal knows the session of a line by its writer, which must still
	// run when the line is read (a short-lived logger may not).
	m.User.WriteFile("session.sh", []byte("#!/bin/sh\n"+program+
		"exec systemd-cat -t session sh -c 'echo \"main $$\"; exec sleep infinity'\n"), 0o755)
	m.Root.StartUnit("login.service", nil, "/usr/bin/script", "--quiet", "--flush",
		"--command", "su - "+systemdtest.User+" -c /home/"+systemdtest.User+"/session.sh", "/dev/null")
	e := m.Root.WaitJournal("systemd-logind.service", `^New session \S+ of user `+systemdtest.User+`\.$`, l.opened, 10*time.Second)
	l.id = strings.Fields(e.Message)[2]
	e = m.Root.WaitJournal(l.scope(), `^main \d+$`, l.opened, 10*time.Second)
	l.main, _ = strconv.Atoi(strings.Fields(e.Message)[1])
	out := m.Root.Run("busctl", "call", "org.freedesktop.login1", "/org/freedesktop/login1",
		"org.freedesktop.login1.Manager", "GetSession", "s", l.id)
	l.path = strings.Trim(strings.TrimPrefix(out, "o "), `"`)
	if typ := m.Root.Run("loginctl", "show-session", l.id, "--property=Type", "--value"); typ != "tty" {
		t.Errorf("session %s is of type %q, want tty", l.id, typ)
	}
	if d := m.Root.Run("loginctl", "show-user", systemdtest.User, "--property=Display", "--value"); d != l.id {
		t.Fatalf("the user's Display is %q, not the session %s", d, l.id)
	}
	return l
}

// logout ends the session as a terminal logout does: its main process
// exits, su closes the PAM session, and logind, told the session is over,
// leaves what still runs in it (KillUserProcesses=no): the session is
// "closing" until that has gone too.
func (l loginSession) logout(t *testing.T, m *systemdtest.Machine) {
	t.Helper()
	since := time.Now()
	m.Root.Run("kill", strconv.Itoa(l.main))
	m.Root.WaitJournal("systemd-logind.service", `^Session `+regexp.QuoteMeta(l.id)+` logged out\. Waiting for processes to exit\.$`,
		since, 10*time.Second)
	if st := m.Root.Run("loginctl", "show-session", l.id, "--property=State", "--value"); st != "closing" {
		t.Fatalf("session %s is %q after the logout, want closing", l.id, st)
	}
	if d := m.Root.Run("loginctl", "show-user", systemdtest.User, "--property=Display", "--value"); d != l.id {
		t.Errorf("the user's Display is %q after the logout, not the closing session %s", d, l.id)
	}
}

// TestSessionEndUserClosing is the last logout of a user who does not
// linger, busmedic running in its user unit: the login session has
// nothing left in it, so logind removes it at once, the user's Display
// becomes none, and logind stops the user's manager, dbus.service and
// busmedic.service with it. Whether busmedic sees the bus go before or
// after its own SIGTERM is the manager's order; here dbus.service stops
// first (busmedic.service is ordered before it), the case where the
// session's own state cannot tell busmedic anything any more: it is gone.
// logind's User State, "closing" all the while, must.
func TestSessionEndUserClosing(t *testing.T) {
	m := systemdtest.Boot(t, systemdtest.Options{})
	echo := sessionApps[0]
	m.User.WriteFile(".config/busmedic/apps.toml", []byte(rulesFor([]app{echo}, "1s")), 0o644)
	m.User.WriteUnit(echo.unit, echo.text)
	l := login(t, m, "")
	// The session alone keeps the user's manager now, as for a user who
	// does not linger.
	m.Root.Run("loginctl", "disable-linger", systemdtest.User)
	if st := m.Root.Run("loginctl", "show-user", systemdtest.User, "--property=Linger", "--value"); st != "no" {
		t.Fatalf("the user lingers (%q)", st)
	}
	m.User.Run("systemctl", "--user", "start", echo.unit)
	m.User.StartUnit("busmedic.service", []string{"Before=dbus.service"}, systemdtest.BusmedicPath, "run", "--no-tray")
	m.User.WaitJournal("busmedic.service", `following our user's display session.*session=`+regexp.QuoteMeta(l.path), l.opened, 30*time.Second)
	s := &session{t: t, m: m, apps: []app{echo}}
	s.waitStatus(30*time.Second, "busmedic sees the app", s.allRunning)

	logout := time.Now()
	m.Root.Run("kill", strconv.Itoa(l.main))
	m.Root.WaitJournal("systemd-logind.service", `^Removed session `+regexp.QuoteMeta(l.id)+`\.$`, logout, 10*time.Second)
	e := m.User.WaitJournal("busmedic.service", `no recovery`, logout, 30*time.Second)
	if want := "its last login session ended"; !strings.Contains(e.Message, want) {
		t.Errorf("busmedic gave another reason for no recovery than %q: %s", want, e.Message)
	}
	m.Root.WaitUnit("user@"+strconv.Itoa(systemdtest.UID)+".service", 30*time.Second, systemdtest.UnitState.Stopped)
	// Nothing busmedic could have started lives on in the user's slice.
	if out := m.Root.Run("sh", "-c", "pgrep -u "+systemdtest.User+" -a || true"); out != "" {
		t.Errorf("processes of the user after the logout:\n%s", out)
	}
}
