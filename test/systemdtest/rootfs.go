package systemdtest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The root file system every container boots: Debian 12, minbase, with
// systemd as init, both bus implementations, polkit, the tools the tests
// use, and a user whose manager starts at boot (lingering). Changing any of
// it changes the cache key, so a new root file system is built.
const (
	suite  = "bookworm"
	mirror = "http://deb.debian.org/debian"
	// recipeVersion changes the key when something outside these lists,
	// such as the way Boot uses the tree, needs a fresh build.
	recipeVersion = "1"
)

// packages: dbus-user-session makes the session bus the socket-activated
// dbus.socket user unit; dbus-broker is its other implementation, chosen
// at boot; libpam-systemd gives logind sessions; polkitd and pkexec decide
// who may restart the system bus; procps (ps, pgrep) looks at processes;
// dbus-tests has dbus-test-tool, a libdbus service; libglib2.0-bin has
// gdbus, a GDBus client, and python3-gi makes small GDBus services that
// own a name (GDBus raises SIGTERM on itself when its bus goes).
var packages = []string{
	"systemd", "systemd-sysv", "dbus", "dbus-user-session", "dbus-broker",
	"libpam-systemd", "polkitd", "pkexec", "procps", "passwd",
	"dbus-tests", "libglib2.0-bin", "python3-gi",
}

// hooks run in the finished tree ($1) before it is packed up.
var hooks = []string{
	// The user, in group sudo: polkit's admin group on Debian, which the
	// README's rule lets restart the system bus.
	fmt.Sprintf(`chroot "$1" useradd -m -u %d -G sudo -s /bin/bash %s`, UID, User),
	// Lingering: the user manager and its session bus start at boot, with
	// no login.
	fmt.Sprintf(`mkdir -p "$1/var/lib/systemd/linger" && touch "$1/var/lib/systemd/linger/%s"`, User),
	// mmdebstrap copies the host's name in.
	`echo busmedic-test > "$1/etc/hostname"`,
	// Installing dbus-broker made it dbus.service for the system and the
	// users. The tree chooses no implementation, which means dbus-daemon;
	// Boot chooses in each container's own layer (switching on a running
	// system hangs logind).
	`rm -f "$1/etc/systemd/system/dbus.service" "$1/etc/systemd/user/dbus.service"`,
}

// mmdebstrapArgs returns the command line that builds the tree into dir.
func mmdebstrapArgs(dir string) []string {
	args := []string{
		"--variant=minbase",
		// The Release files are checked by signature; a machine whose
		// clock is off still builds.
		`--aptopt=Acquire::Check-Valid-Until "false"`,
		`--aptopt=Acquire::Check-Date "false"`,
		"--include=" + strings.Join(packages, ","),
	}
	for _, h := range hooks {
		args = append(args, "--customize-hook="+h)
	}
	return append(args, suite, dir, mirror)
}

// rootfsDir is the cached tree for this recipe.
func rootfsDir() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", recipeVersion, strings.Join(mmdebstrapArgs("TARGET"), "\n"))
	return filepath.Join(CacheDir, "rootfs-"+hex.EncodeToString(h.Sum(nil))[:16])
}

// rootfsOnce memoises the tree in this process; cached makes other test
// processes wait for one build.
var rootfsOnce struct {
	sync.Mutex
	dir string
}

// rootfs returns the root file system, building it first if it is not in
// the cache (about 30–75 s and 265 MB; it needs mmdebstrap and the Debian
// mirror). The tree is the lower layer of every container and is never
// written to.
func rootfs(t testing.TB) string {
	t.Helper()
	rootfsOnce.Lock()
	defer rootfsOnce.Unlock()
	if rootfsOnce.dir != "" {
		return rootfsOnce.dir
	}
	dir := rootfsDir()
	build := func(tmp string) error {
		if _, err := exec.LookPath("mmdebstrap"); err != nil {
			return fmt.Errorf("mmdebstrap is needed to build the root file system: %w; %s", err, InstallHint)
		}
		start := time.Now()
		logPath := dir + ".log"
		logFile, err := os.Create(logPath)
		if err != nil {
			return fmt.Errorf("create build log: %w", err)
		}
		defer logFile.Close()
		cmd := exec.Command("mmdebstrap", mmdebstrapArgs(tmp)...)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		// mmdebstrap mounts /dev, /proc and /sys into the tree while it
		// works; in a mount namespace of its own (Go makes it private)
		// those mounts end with it even if it is killed, and removing an
		// unfinished tree can never reach into the host's /dev.
		cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
		t.Logf("systemdtest: building the root file system in %s (log: %s)", tmp, logPath)
		if err := cmd.Run(); err != nil {
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("mmdebstrap: %w (does this machine reach %s?)\n%s", err, mirror, tail(string(log), 30))
		}
		t.Logf("systemdtest: root file system built in %s", time.Since(start).Round(100*time.Millisecond))
		return nil
	}
	wait := func() { t.Logf("systemdtest: waiting for another test process to build %s", dir) }
	if err := cached(dir, build, wait); err != nil {
		t.Fatalf("systemdtest: root file system: %v", err)
	}
	rootfsOnce.dir = dir
	return dir
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
