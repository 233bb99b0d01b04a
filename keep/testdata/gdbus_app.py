#!/usr/bin/python3
"""A GDBus app for the keeper's tests: a service, a client, or both.

Usage: gdbus_app.py [--own NAME] [--watch NAME]... [--subscribe]

It owns NAME (printing "owned NAME" when the bus says so, "lost NAME" when
it loses it) and serves org.example.Keep on /org/example/Keep:
  Ping(s) -> s          "pong:" + the argument
  Pid() -> u            its process id, so a test sees which process answered
  ReadFd(h) -> s        reads the passed file descriptor to its end
  OpenFd(s) -> h        a pipe's read end that yields the argument
It watches NAME with Gio.bus_watch_name and prints "appeared NAME OWNER" and
"vanished NAME". With --subscribe it subscribes to the signal
org.example.Keep.Tick(s) from anyone (an AddMatch for the keeper to
replay) and prints "tick ARG" for each. On stdin it takes one command a line and prints one answer
line, so the test waits on lines, never on time:
  call NAME ARG         "reply pong:ARG" or "error MESSAGE"
  poke NAME             calls Ping and takes any answer: "answered"
  owner NAME            the watched name's owner as the watcher last
                        said: "owner NAME OWNER", or "owner NAME -"
  sendfd NAME TEXT      sends a pipe with TEXT to ReadFd: "readfd TEXT"
  getfd NAME TEXT       asks OpenFd for a pipe and reads it: "gotfd TEXT"
Its bus connection is GDBus's shared one, which exits the process when the
bus closes it (exit-on-close): what a kept app must never see.
"""

import argparse
import os
import sys

from gi.repository import Gio, GLib

IFACE = "org.example.Keep"
PATH = "/org/example/Keep"
XML = """
<node>
  <interface name="org.example.Keep">
    <method name="Ping"><arg type="s" direction="in"/><arg type="s" direction="out"/></method>
    <method name="Pid"><arg type="u" direction="out"/></method>
    <method name="ReadFd"><arg type="h" direction="in"/><arg type="s" direction="out"/></method>
    <method name="OpenFd"><arg type="s" direction="in"/><arg type="h" direction="out"/></method>
  </interface>
</node>
"""


def say(*words):
    print(*words, flush=True)


def read_all(fd):
    chunks = []
    while True:
        b = os.read(fd, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(fd)
    return b"".join(chunks).decode()


def pipe_with(text):
    r, w = os.pipe()
    os.write(w, text.encode())
    os.close(w)
    return r


def on_call(conn, sender, path, iface, method, params, invocation):
    if method == "Ping":
        invocation.return_value(GLib.Variant("(s)", ("pong:" + params[0],)))
    elif method == "Pid":
        invocation.return_value(GLib.Variant("(u)", (os.getpid(),)))
    elif method == "ReadFd":
        fds = invocation.get_message().get_unix_fd_list()
        fd = fds.get(params.unpack()[0]) if fds else -1
        if fd < 0:
            invocation.return_dbus_error(IFACE + ".NoFd", "no fd passed")
            return
        invocation.return_value(GLib.Variant("(s)", (read_all(fd),)))
    elif method == "OpenFd":
        r = pipe_with(params[0])
        out = Gio.UnixFDList.new()
        idx = out.append(r)
        os.close(r)
        invocation.return_value_with_unix_fd_list(GLib.Variant("(h)", (idx,)), out)


def call(conn, name, method, args, sig, fds=None):
    """A synchronous call with a deadline: a hang would be a failure too."""
    return conn.call_with_unix_fd_list_sync(
        name, PATH, IFACE, method, args, GLib.VariantType.new(sig) if sig else None,
        Gio.DBusCallFlags.NONE, 5000, fds, None)


# The owner of each watched name as the watcher's callbacks said.
owners = {}


def appeared(conn, name, owner):
    owners[name] = owner
    say("appeared", name, owner)


def vanished(conn, name):
    owners[name] = ""
    say("vanished", name)


def command(conn, line):
    words = line.split(" ", 2)
    cmd, name, arg = (words + ["", ""])[:3]
    try:
        if cmd == "call":
            ret, _ = call(conn, name, "Ping", GLib.Variant("(s)", (arg,)), "(s)")
            say("reply", ret[0])
        elif cmd == "owner":
            say("owner", name, owners.get(name) or "-")
        elif cmd == "poke":
            call(conn, name, "Ping", GLib.Variant("(s)", ("poke",)), None)
            say("answered")
        elif cmd == "sendfd":
            fds = Gio.UnixFDList.new()
            r = pipe_with(arg)
            idx = fds.append(r)
            os.close(r)
            ret, _ = call(conn, name, "ReadFd", GLib.Variant("(h)", (idx,)), "(s)", fds)
            say("readfd", ret[0])
        elif cmd == "getfd":
            ret, fds = call(conn, name, "OpenFd", GLib.Variant("(s)", (arg,)), "(h)")
            if fds is None:
                say("error no fd returned")
                return
            say("gotfd", read_all(fds.get(ret[0])))
        else:
            say("error unknown command", cmd)
    except GLib.Error as e:
        say("error", e.message.replace("\n", " "))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--own")
    p.add_argument("--watch", action="append", default=[])
    p.add_argument("--subscribe", action="store_true")
    a = p.parse_args()
    loop = GLib.MainLoop()
    conn = Gio.bus_get_sync(Gio.BusType.SESSION, None)
    node = Gio.DBusNodeInfo.new_for_xml(XML)
    conn.register_object(PATH, node.interfaces[0], on_call, None, None)
    if a.own:
        Gio.bus_own_name_on_connection(
            conn, a.own, Gio.BusNameOwnerFlags.NONE,
            lambda c, n: say("owned", n), lambda c, n: say("lost", n))
    for name in a.watch:
        Gio.bus_watch_name_on_connection(
            conn, name, Gio.BusNameWatcherFlags.NONE, appeared, vanished)

    if a.subscribe:
        conn.signal_subscribe(
            None, IFACE, "Tick", None, None, Gio.DBusSignalFlags.NONE,
            lambda c, sender, path, iface, member, params: say("tick", params[0]))

    def on_stdin(source, cond):
        line = sys.stdin.readline()
        if not line:
            loop.quit()
            return False
        command(conn, line.strip())
        return True

    GLib.io_add_watch(sys.stdin.fileno(), GLib.IO_IN | GLib.IO_HUP, on_stdin)
    say("ready", conn.get_unique_name())
    loop.run()


if __name__ == "__main__":
    main()
