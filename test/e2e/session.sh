#!/bin/sh
# session.sh BUSMEDIC: a whole desktop session in miniature, and session bus
# restarts in it. An X server (Xvfb), a real dbus-daemon as the session bus
# (and one as the system bus), real legacy programs that die with their bus
# (dunst, and xfce4-panel with its notification area, from Debian) and
# busmedic run with its tray icon in that panel. The session bus is stopped
# with SIGTERM (as systemd and package scripts do: the daemon says goodbye
# for every peer first) and started again at the same address, then killed
# with SIGKILL and started again. After each: dunst and the panel are back
# (new processes, one of each), busmedic's tray item is registered with the
# new panel's StatusNotifierWatcher, notify-send works, the item's tooltip
# says all is well (no false casualty: not busmedic itself, not the old
# panel's plugins), and busmedic history tells the relaunches.
#
# Every wait is on a condition with a deadline: gdbus wait for bus names,
# and a re-check loop (wait_for) for the rest. Exit status 0: all held;
# 1: an assertion failed (the logs are printed); 2: a program is missing.
set -eu

busmedic=${1:?usage: session.sh BUSMEDIC}
here=$(cd "$(dirname "$0")" && pwd)
xfconfd=$(ls /usr/lib/*/xfce4/xfconf/xfconfd 2>/dev/null | head -n 1)
for p in Xvfb dbus-daemon gdbus dunst xfce4-panel notify-send "${xfconfd:-xfconfd}"; do
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
	"$busmedic" status 2>&1 | sed 's/^/status: /' >&2 || true
	for f in busmedic.log panel.log dunst.log bus.log; do
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
# -noreset: when the bus takes every app with it, the X server must not
# reset under the apps busmedic starts again.
Xvfb -displayfd 3 -nolisten tcp -noreset 3>"$tmp/display" 2>"$tmp/xvfb.log" &
pids="$pids $!"
wait_for "X display" 10 test -s "$tmp/display"
DISPLAY=:$(cat "$tmp/display")

# The buses: the session bus can start only xfconfd on demand (the panel's
# settings store, as in every Xfce session); Debian also ships a service
# file for dunst, left out so that only busmedic can bring dunst back.
mkdir -p "$tmp/services"
printf '[D-BUS Service]\nName=org.xfce.Xfconf\nExec=%s\n' "$xfconfd" >"$tmp/services/org.xfce.Xfconf.service"
for type in session system; do
	servicedir=""
	[ "$type" = session ] && servicedir="<servicedir>$tmp/services</servicedir>"
	cat >"$tmp/$type.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>$type</type>
  <listen>unix:path=$tmp/$( [ $type = session ] && echo bus || echo system)</listen>
  <auth>EXTERNAL</auth>
  $servicedir
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
    <allow user="*"/>
  </policy>
</busconfig>
CONF
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
mkdir -p "$tmp/config/busmedic" "$tmp/run" "$tmp/state" "$tmp/home" "$tmp/config/xfce4/xfconf/xfce-perchannel-xml"
chmod 700 "$tmp/run"
export DISPLAY HOME="$tmp/home" \
	DBUS_SESSION_BUS_ADDRESS="unix:path=$tmp/bus" DBUS_SYSTEM_BUS_ADDRESS="unix:path=$tmp/system" \
	XDG_RUNTIME_DIR="$tmp/run" XDG_CONFIG_HOME="$tmp/config" XDG_CONFIG_DIRS="$tmp/sysconfig" \
	XDG_STATE_HOME="$tmp/state" XDG_CACHE_HOME="$tmp/cache" XDG_DATA_HOME="$tmp/data"
unset XDG_SESSION_ID WAYLAND_DISPLAY BUSMEDIC_CONFIG 2>/dev/null || true
# The buses start in the session's environment: what the session bus
# starts on demand (xfconfd) must use the session's directories.
start_bus system
start_bus session
session_bus_pid=$bus_pid

# One panel with a notification area: the systray plugin, which is also the
# StatusNotifierWatcher (the benchmarks use the same panel).
cp "$here/xfce4-panel.xml" "$tmp/config/xfce4/xfconf/xfce-perchannel-xml/xfce4-panel.xml"

cat >"$tmp/config/busmedic/apps.toml" <<RULES
version = 1

[[app]]
id = "dunst"
names = ["org.freedesktop.Notifications"]
exe = "/usr/bin/dunst"
exec = ["/usr/bin/dunst"]

[[app]]
id = "xfce4-panel"
names = ["org.xfce.Panel"]
exe = "/usr/bin/xfce4-panel"
exec = ["/usr/bin/xfce4-panel"]
RULES
chmod 600 "$tmp/config/busmedic/apps.toml"

xfce4-panel >"$tmp/panel.log" 2>&1 &
pids="$pids $!"
dunst >"$tmp/dunst.log" 2>&1 &
pids="$pids $!"
gdbus wait --session --timeout 10 org.xfce.Panel || fail "xfce4-panel did not start"
gdbus wait --session --timeout 10 org.kde.StatusNotifierWatcher || fail "the panel's notification area did not start"
gdbus wait --session --timeout 10 org.freedesktop.Notifications || fail "dunst did not start"

"$busmedic" run -v >"$tmp/busmedic.log" 2>&1 &
busmedic_pid=$!
pids="$pids $busmedic_pid"
say "session up on $DISPLAY; busmedic running"

bus_call() {
	gdbus call --session --dest org.freedesktop.DBus --object-path /org/freedesktop/DBus \
		--method "org.freedesktop.DBus.$1" "$2"
}
# pid_of NAME: the pid of the owner of a bus name.
pid_of() {
	owner=$(bus_call GetNameOwner "$1" | sed "s/^('\(.*\)',)$/\1/")
	bus_call GetConnectionUnixProcessID "$owner" | sed 's/^(uint32 \([0-9]*\),)$/\1/'
}
status_has() { "$busmedic" status 2>/dev/null | grep -Eq "$1"; }
# tray_item: prints busmedic's item among the items the panel's watcher has
# registered (the item whose process runs the busmedic binary); fails if
# there is none.
tray_item() {
	gdbus call --session --dest org.kde.StatusNotifierWatcher --object-path /StatusNotifierWatcher \
		--method org.freedesktop.DBus.Properties.Get org.kde.StatusNotifierWatcher RegisteredStatusNotifierItems |
		grep -o "'[^']*'" | tr -d "'" | while read -r item; do
			name=${item%%/*}
			p=$(bus_call GetConnectionUnixProcessID "$name" 2>/dev/null | sed 's/^(uint32 \([0-9]*\),)$/\1/')
			if [ -n "$p" ] && [ "$(readlink "/proc/$p/exe")" = "$(readlink -f "$busmedic")" ]; then
				echo "$item"
			fi
		done | grep .
}
# tooltip_says TEXT: the tooltip of busmedic's item, as the panel shows it,
# holds TEXT.
tooltip_says() {
	item=$(tray_item | head -n 1) || return 1
	case $item in
	*/*) path=/${item#*/} ;;
	*) path=/StatusNotifierItem ;;
	esac
	gdbus call --session --dest "${item%%/*}" --object-path "$path" \
		--method org.freedesktop.DBus.Properties.Get org.kde.StatusNotifierItem ToolTip | grep -q "$1"
}
gone() { ! kill -0 "$1" 2>/dev/null || grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
# count_procs NAME: processes of this session running NAME.
count_procs() {
	n=0
	for e in /proc/[0-9]*/environ; do
		p=${e#/proc/}
		p=${p%/environ}
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$1" ] || continue
		grep -qsF "DBUS_SESSION_BUS_ADDRESS=unix:path=$tmp/bus" "$e" && n=$((n + 1))
	done
	echo "$n"
}

# busmedic knows both apps are on the bus, and its tray item is in the panel.
wait_for "dunst in busmedic status" 15 status_has '^  dunst +relaunch +running'
wait_for "xfce4-panel in busmedic status" 15 status_has '^  xfce4-panel +relaunch +running'
wait_for "busmedic's item in the panel" 15 tray_item
wait_for "a healthy icon" 15 tooltip_says 'all buses up'

round=0
for sig in TERM KILL; do
	round=$((round + 1))
	old_dunst=$(pid_of org.freedesktop.Notifications)
	old_panel=$(pid_of org.xfce.Panel)
	old_watcher=$(pid_of org.kde.StatusNotifierWatcher)
	say "SIG$sig to the session bus (pid $session_bus_pid); dunst $old_dunst, panel $old_panel, watcher $old_watcher"
	kill -s "$sig" "$session_bus_pid"
	wait_for "exit of dunst with its bus" 10 gone "$old_dunst"
	wait_for "exit of the panel with its bus" 10 gone "$old_panel"
	wait_for "exit of the bus" 10 gone "$session_bus_pid"
	start_bus session
	session_bus_pid=$bus_pid
	say "session bus started again"

	gdbus wait --session --timeout 20 org.freedesktop.Notifications || fail "org.freedesktop.Notifications has no owner again"
	gdbus wait --session --timeout 20 org.xfce.Panel || fail "the panel did not come back"
	gdbus wait --session --timeout 20 org.kde.StatusNotifierWatcher || fail "the panel's notification area did not come back"
	new_dunst=$(pid_of org.freedesktop.Notifications)
	[ -n "$new_dunst" ] && [ "$new_dunst" != "$old_dunst" ] || fail "no new dunst (pid $new_dunst, was $old_dunst)"
	[ "$(readlink "/proc/$new_dunst/exe")" = /usr/bin/dunst ] || fail "org.freedesktop.Notifications is not owned by /usr/bin/dunst"
	new_panel=$(pid_of org.xfce.Panel)
	[ -n "$new_panel" ] && [ "$new_panel" != "$old_panel" ] || fail "no new panel (pid $new_panel, was $old_panel)"
	new_watcher=$(pid_of org.kde.StatusNotifierWatcher)
	[ "$new_watcher" != "$old_watcher" ] || fail "the watcher is the old one (pid $old_watcher)"
	say "dunst is back as pid $new_dunst, the panel as pid $new_panel"

	wait_for "busmedic's item in the new panel" 20 tray_item
	notify-send -t 1000 "busmedic test" "round $round" || fail "notify-send failed after the restart"
	wait_for "dunst relaunched in busmedic history" 20 sh -c "'$busmedic' history -n 1 | grep -Eq '^  dunst +relaunched'"
	wait_for "xfce4-panel relaunched in busmedic history" 20 sh -c "'$busmedic' history -n 1 | grep -Eq '^  xfce4-panel +relaunched'"
	wait_for "a healthy icon after the recovery" 20 tooltip_says 'all buses up'
	[ "$(count_procs dunst)" -eq 1 ] || fail "$(count_procs dunst) dunst processes, want 1"
	[ "$(count_procs xfce4-panel)" -eq 1 ] || fail "$(count_procs xfce4-panel) xfce4-panel processes, want 1"
	if "$busmedic" status | grep -q 'Fell off'; then
		fail "busmedic lists casualties after a recovery in which everything came back"
	fi
	kill -0 "$busmedic_pid" || fail "busmedic run exited"
done
"$busmedic" history
say "PASS"
