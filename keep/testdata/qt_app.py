#!/usr/bin/python3
"""A QtDBus app for the keeper's tests (PyQt5).

Usage: qt_app.py --own NAME --watch NAME...

It registers NAME on QDBusConnection.sessionBus() and serves org.example.Keep
on /org/example/Keep (Ping(s) -> s: "pong:" + the argument; Pid() -> u).
A QDBusServiceWatcher on the watched names prints "registered NAME" and
"unregistered NAME". On stdin, "status" prints "connected true|false" (a
QtDBus app whose bus went away lives on deaf: it never reconnects);
"watched NAME" prints "watched NAME yes|no", whether the watcher last
said NAME was registered. It prints "ready" once its name is
registered.
"""

import argparse
import os
import signal
import sys

from PyQt5.QtCore import (Q_CLASSINFO, QCoreApplication, QObject,
                          QSocketNotifier, pyqtSlot)
from PyQt5.QtDBus import QDBusConnection, QDBusServiceWatcher


def say(*words):
    print(*words, flush=True)


class Keep(QObject):
    Q_CLASSINFO("D-Bus Interface", "org.example.Keep")

    @pyqtSlot(str, result=str)
    def Ping(self, arg):
        return "pong:" + arg

    @pyqtSlot(result="uint")
    def Pid(self):
        return os.getpid()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--own", required=True)
    p.add_argument("--watch", action="append", required=True)
    a = p.parse_args()
    # The default SIGTERM handler, not Python's: the test's SIGKILL/SIGTERM
    # must end the process even while Qt's loop runs.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    app = QCoreApplication(sys.argv)
    bus = QDBusConnection.sessionBus()
    if not bus.isConnected():
        say("error not connected:", bus.lastError().message())
        return 1
    obj = Keep()
    if not bus.registerObject("/org/example/Keep", obj, QDBusConnection.ExportAllSlots):
        say("error registerObject:", bus.lastError().message())
        return 1
    watcher = QDBusServiceWatcher(a.watch[0], bus, QDBusServiceWatcher.WatchForOwnerChange)
    for name in a.watch[1:]:
        watcher.addWatchedService(name)
    registered = {}

    def on_registered(n):
        registered[n] = True
        say("registered", n)

    def on_unregistered(n):
        registered[n] = False
        say("unregistered", n)

    watcher.serviceRegistered.connect(on_registered)
    watcher.serviceUnregistered.connect(on_unregistered)
    if not bus.registerService(a.own):
        say("error registerService:", bus.lastError().message())
        return 1

    def on_stdin():
        line = sys.stdin.readline()
        if not line:
            app.quit()
            return
        words = line.split()
        if words == ["status"]:
            say("connected", "true" if QDBusConnection.sessionBus().isConnected() else "false")
        elif len(words) == 2 and words[0] == "watched":
            say("watched", words[1], "yes" if registered.get(words[1]) else "no")
        else:
            say("error unknown command", line.strip())

    notifier = QSocketNotifier(sys.stdin.fileno(), QSocketNotifier.Read)
    notifier.activated.connect(on_stdin)
    say("ready", bus.baseService())
    return app.exec_()


if __name__ == "__main__":
    sys.exit(main())
