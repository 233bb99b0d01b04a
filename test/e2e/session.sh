#!/bin/sh
# session.sh BUSMEDIC: a whole desktop session in miniature, and a session
# bus crash in it. An X server (Xvfb), a real dbus-daemon as the session bus
# (and one as the system bus), a real legacy program that dies with its bus
# (dunst, from Debian), a panel stand-in that owns the tray registry
# (snw.py, a GDBus program that dies with its bus too) and busmedic run
# with its tray icon. The session bus is killed with SIGKILL and started
# again at the same address; then dunst must be back and own
# org.freedesktop.Notifications, busmedic's tray icon must be registered
# again with the (relaunched) registry, and busmedic history must tell it.
#
# Every wait is on a condition with a deadline: gdbus wait for bus names,
# and a re-check loop (wait_for) for the rest. Exit status 0: all held;
# 1: an assertion failed (the logs are printed); 2: a program is missing.
set -eu

busmedic=${1:?usage: session.sh BUSMEDIC}
here=$(cd "$(dirname "$0")" && pwd)
for p in Xvfb dbus-daemon gdbus dunst /usr/bin/python3; do
	command -v "$p" >/dev/null 2>&1 || {
		echo "session.sh: $p is missing: run scripts/ensure-deps test" >&2
		exit 2
	}
done

tmp=$(mktemp -d /tmp/busmedic-e2e.XXXXXX)
pids=""
cleanup() {
	# shellcheck disable=SC2086 # a list of pids
	[ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
	# The apps busmedic started are its children no more: end them by
	# the session bus address in their environment.
	for e in /proc/[0-9]*/environ; do
		if grep -qsF "DBUS_SESSION_BUS_ADDRESS=unix:path=$tmp/bus" "$e" 2>/dev/null; then
			p=${e#/proc/}
			kill -9 "${p%/environ}" 2>/dev/null || true
		fi
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

say() { echo "session.sh: $*"; }

fail() {
	echo "session.sh: FAIL: $*" >&2
	for f in busmedic.log snw.log dunst.log bus.log; do
		[ -f "$tmp/$f" ] && { echo "--- $f" >&2; tail -n 60 "$tmp/$f" >&2; }
	done
	for f in "$tmp"/state/busmedic/*.log; do
		[ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
	done
	exit 1
}

# wait_for WHAT SECONDS COMMAND...: re-checks COMMAND until it succeeds, or
# fails the test once the deadline has passed.
wait_for() {
	what=$1 secs=$2
	shift 2
	end=$(($(date +%s) + secs))
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$end" ] || fail "no $what within ${secs}s"
		sleep 0.05
	done
}

# The X server picks a free display and writes it when ready.
Xvfb -displayfd 3 -nolisten tcp 3>"$tmp/display" 2>"$tmp/xvfb.log" &
pids="$pids $!"
wait_for "X display" 10 test -s "$tmp/display"
DISPLAY=:$(cat "$tmp/display")

# The buses: no service directories, so that nothing comes back by D-Bus
# activation (Debian ships org.knopwob.dunst.service): only busmedic can
# bring dunst back.
for type in session system; do
	cat >"$tmp/$type.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>$type</type>
  <listen>unix:path=$tmp/$( [ $type = session ] && echo bus || echo system)</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
    <allow user="*"/>
  </policy>
</busconfig>
EOF
done

# start_bus TYPE: starts a bus daemon; returns once it accepts connections
# (it prints its address then).
start_bus() {
	rm -f "$tmp/$1.addr"
	dbus-daemon --config-file="$tmp/$1.conf" --nofork --nopidfile --nosyslog --print-address=1 >"$tmp/$1.addr" 2>>"$tmp/bus.log" &
	bus_pid=$!
	pids="$pids $bus_pid"
	wait_for "$1 bus" 10 test -s "$tmp/$1.addr"
}
start_bus system
start_bus session
session_bus_pid=$bus_pid

mkdir -p "$tmp/config/busmedic" "$tmp/run" "$tmp/state" "$tmp/home"
chmod 700 "$tmp/run"
export DISPLAY HOME="$tmp/home" \
	DBUS_SESSION_BUS_ADDRESS="unix:path=$tmp/bus" DBUS_SYSTEM_BUS_ADDRESS="unix:path=$tmp/system" \
	XDG_RUNTIME_DIR="$tmp/run" XDG_CONFIG_HOME="$tmp/config" XDG_CONFIG_DIRS="$tmp/sysconfig" \
	XDG_STATE_HOME="$tmp/state" XDG_CACHE_HOME="$tmp/cache" XDG_DATA_HOME="$tmp/data"
unset XDG_SESSION_ID WAYLAND_DISPLAY BUSMEDIC_CONFIG 2>/dev/null || true

cat >"$tmp/config/busmedic/apps.toml" <<EOF
version = 1

[[app]]
id = "dunst"
names = ["org.freedesktop.Notifications"]
exe = "/usr/bin/dunst"
exec = ["/usr/bin/dunst"]

[[app]]
id = "panel"
names = ["org.kde.StatusNotifierWatcher"]
cmdline = "*/snw.py *"
exec = ["/usr/bin/python3", "$here/snw.py", "$tmp/snw.log"]
EOF
chmod 600 "$tmp/config/busmedic/apps.toml"

/usr/bin/python3 "$here/snw.py" "$tmp/snw.log" 2>>"$tmp/snw.log" &
pids="$pids $!"
dunst >"$tmp/dunst.log" 2>&1 &
pids="$pids $!"
gdbus wait --session --timeout 10 org.kde.StatusNotifierWatcher || fail "the tray registry did not start"
gdbus wait --session --timeout 10 org.freedesktop.Notifications || fail "dunst did not start"

"$busmedic" run -v >"$tmp/busmedic.log" 2>&1 &
pids="$pids $!"
say "session up on $DISPLAY; busmedic running"

registrations() { grep -c '^registered ' "$tmp/snw.log" 2>/dev/null || true; }
# registered_at_least re-reads the log at every check (an argument such as
# "$(registrations)" would be read once, before the wait).
registered_at_least() { test "$(registrations)" -ge "$1"; }
status_has() { "$busmedic" status 2>/dev/null | grep -Eq "$1"; }
# busmedic knows both apps are on the bus, and its tray icon is registered.
wait_for "dunst in busmedic status" 15 status_has '^  dunst +relaunch +running'
wait_for "panel in busmedic status" 15 status_has '^  panel +relaunch +running'
wait_for "tray icon registration" 15 registered_at_least 1

owner_pid() {
	gdbus call --session --dest org.freedesktop.DBus --object-path /org/freedesktop/DBus \
		--method org.freedesktop.DBus.GetConnectionUnixProcessID \
		"$(gdbus call --session --dest org.freedesktop.DBus --object-path /org/freedesktop/DBus \
			--method org.freedesktop.DBus.GetNameOwner "$1" | sed "s/^('\(.*\)',)$/\1/")" |
		sed 's/^(uint32 \([0-9]*\),)$/\1/'
}
old_dunst=$(owner_pid org.freedesktop.Notifications)
say "dunst is pid $old_dunst; killing the session bus (pid $session_bus_pid)"

kill -9 "$session_bus_pid"
gone() { ! kill -0 "$1" 2>/dev/null || grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
wait_for "exit of dunst with its bus" 10 gone "$old_dunst"
start_bus session
say "session bus started again"

gdbus wait --session --timeout 20 org.freedesktop.Notifications || fail "org.freedesktop.Notifications has no owner again"
new_dunst=$(owner_pid org.freedesktop.Notifications)
[ -n "$new_dunst" ] && [ "$new_dunst" != "$old_dunst" ] || fail "no new dunst (pid $new_dunst, was $old_dunst)"
exe=$(readlink "/proc/$new_dunst/exe")
[ "$exe" = /usr/bin/dunst ] || fail "org.freedesktop.Notifications is owned by $exe, not /usr/bin/dunst"
say "dunst is back as pid $new_dunst and owns org.freedesktop.Notifications"

gdbus wait --session --timeout 20 org.kde.StatusNotifierWatcher || fail "the tray registry did not come back"
wait_for "tray icon registration after the restart" 20 registered_at_least 2
say "busmedic's tray icon is registered again"

wait_for "dunst relaunched in busmedic history" 20 sh -c "'$busmedic' history | grep -Eq '^  dunst +relaunched'"
"$busmedic" history
say "PASS"
