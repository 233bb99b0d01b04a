package appdb

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// UnsafeError says why a file could be changed by someone other than this
// user and root, and how to fix that. busmedic refuses to run such a
// program, or to take commands from such a rules file.
type UnsafeError struct {
	// Target is the file that was checked.
	Target string
	// Path is what is at fault: Target itself, a directory above it, or a
	// directory that holds a symlink on the way to it.
	Path string
	// Dir is true when Path is a directory.
	Dir bool
	// Problem says what is wrong with Path, such as "is writable by group
	// or others (mode 0777)".
	Problem string
	// Fix says in words how to fix it, such as "chmod go-w /home/ada/bin".
	Fix string
}

// Error reads, for instance, "/opt/x/run: directory /opt/x is writable by
// group or others (mode 0777) without the sticky bit; fix with: chmod go-w
// /opt/x".
func (e *UnsafeError) Error() string {
	return e.What() + "; fix with: " + e.Fix
}

// What is Error without the fix.
func (e *UnsafeError) What() string {
	switch {
	case e.Path == e.Target:
		return e.Path + " " + e.Problem
	case e.Dir:
		return e.Target + ": directory " + e.Path + " " + e.Problem
	default:
		return e.Target + ": " + e.Path + " " + e.Problem
	}
}

// maxSymlinks bounds the symlinks followed by CheckPath, as the kernel's
// ELOOP does.
const maxSymlinks = 40

// CheckPath checks that only this user and root can change what the
// absolute path names: the file itself, every directory above it, and,
// when the path goes through symlinks, every directory holding one of them
// and everything on the way to its target. Each of these must be owned by
// this user or root, and must not be writable by group or others; a
// directory that is (such as /tmp) passes only with the sticky bit, which
// keeps others from renaming or removing what they do not own in it. It
// does not require path to be a regular file: callers check what they need.
//
// It returns an *UnsafeError for an unsafe path, and an error wrapping
// fs.ErrNotExist when part of the path is missing.
func CheckPath(path string) error {
	if !filepath.IsAbs(path) {
		return fmt.Errorf("check %s: not an absolute path", path)
	}
	c := pathCheck{target: path, uid: os.Geteuid()}
	return c.walk()
}

type pathCheck struct {
	target string
	uid    int
}

func (c *pathCheck) walk() error {
	cur := "/"
	fi, err := os.Lstat(cur)
	if err != nil {
		return fmt.Errorf("check %s: %w", c.target, err)
	}
	if err := c.entry(cur, fi); err != nil {
		return err
	}
	rest := splitPath(c.target)
	links := 0
	for len(rest) > 0 {
		name := rest[0]
		rest = rest[1:]
		if name == ".." {
			// cur holds no symlink, so its parent is lexical.
			cur = filepath.Dir(cur)
			if fi, err = os.Lstat(cur); err != nil {
				return fmt.Errorf("check %s: %w", c.target, err)
			}
			continue
		}
		shared := fi.Mode().Perm()&0o022 != 0 // a sticky directory others may write
		next := filepath.Join(cur, name)
		fi, err = os.Lstat(next)
		if err != nil {
			return fmt.Errorf("check %s: %w", c.target, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			links++
			if links > maxSymlinks {
				return fmt.Errorf("check %s: %w", c.target, syscall.ELOOP)
			}
			// A symlink cannot be changed, only replaced by who may write
			// its directory; in a sticky directory, that is its owner.
			if shared {
				if err := c.owner(next, fi); err != nil {
					return err
				}
			}
			to, err := os.Readlink(next)
			if err != nil {
				return fmt.Errorf("check %s: %w", c.target, err)
			}
			if filepath.IsAbs(to) {
				cur = "/"
			}
			rest = append(splitPath(to), rest...)
			// fi is the directory the walk goes on from.
			if fi, err = os.Lstat(cur); err != nil {
				return fmt.Errorf("check %s: %w", c.target, err)
			}
			continue
		}
		if len(rest) > 0 && !fi.IsDir() {
			return fmt.Errorf("check %s: %s: %w", c.target, next, syscall.ENOTDIR)
		}
		if err := c.entry(next, fi); err != nil {
			return err
		}
		cur = next
	}
	return nil
}

// splitPath returns the names of a path, without empty ones and ".".
func splitPath(p string) []string {
	var out []string
	for n := range strings.SplitSeq(p, "/") {
		if n != "" && n != "." {
			out = append(out, n)
		}
	}
	return out
}

// entry checks one file or directory on the way.
func (c *pathCheck) entry(p string, fi fs.FileInfo) error {
	if err := c.owner(p, fi); err != nil {
		return err
	}
	perm := fi.Mode().Perm()
	if perm&0o022 == 0 {
		return nil
	}
	if fi.IsDir() {
		if fi.Mode()&fs.ModeSticky != 0 {
			return nil // like /tmp: others cannot replace what is ours or root's
		}
		return &UnsafeError{Target: c.target, Path: p, Dir: true,
			Problem: fmt.Sprintf("is writable by group or others (mode %04o) without the sticky bit", perm),
			Fix:     "chmod go-w " + p}
	}
	return &UnsafeError{Target: c.target, Path: p,
		Problem: fmt.Sprintf("is writable by group or others (mode %04o)", perm),
		Fix:     "chmod go-w " + p}
}

// owner checks that p belongs to this user or root.
func (c *pathCheck) owner(p string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	uid := int(st.Uid)
	if uid == 0 || uid == c.uid || uid == foreignUID() {
		return nil
	}
	me := strconv.Itoa(c.uid)
	if u, err := user.LookupId(me); err == nil {
		me = u.Username
	}
	return &UnsafeError{Target: c.target, Path: p, Dir: fi.IsDir(),
		Problem: fmt.Sprintf("is owned by %s, not by you or root", userName(uid)),
		Fix:     fmt.Sprintf("as root, chown %s %s; or use a copy of your own", me, p)}
}

func userName(uid int) string {
	s := strconv.Itoa(uid)
	if u, err := user.LookupId(s); err == nil {
		return fmt.Sprintf("uid %s (%s)", s, u.Username)
	}
	return "uid " + s
}

// foreignUID returns the uid that files owned by users outside this user
// namespace show (overflowuid, usually 65534), or -1 outside a user
// namespace, where 65534 is the real user nobody. In a container such files
// belong to the host (its root, as a rule), which no one in here can act
// as.
var foreignUID = sync.OnceValue(func() int {
	m, err := os.ReadFile("/proc/self/uid_map")
	if err != nil || strings.Join(strings.Fields(string(m)), " ") == "0 0 4294967295" {
		return -1
	}
	b, err := os.ReadFile("/proc/sys/kernel/overflowuid")
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return n
})
