package appdb

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"syscall"

	"github.com/adrg/xdg"
)

// fileName is the name of a rules file inside a busmedic config directory.
const fileName = "apps.toml"

// EnvConfig names the environment variable that picks another user file,
// like the --config flag.
const EnvConfig = "BUSMEDIC_CONFIG"

// Paths are the rules files to load.
type Paths struct {
	// User is the user's file, the most important one. It need not exist.
	User string
	// System are the system-wide files, most important first (the order of
	// $XDG_CONFIG_DIRS). They need not exist.
	System []string
}

// Files returns every file, most important first.
func (p Paths) Files() []string {
	return append([]string{p.User}, p.System...)
}

// DefaultPaths returns the files busmedic reads: the user file
// $XDG_CONFIG_HOME/busmedic/apps.toml, or the file named by configFlag, or
// else by $BUSMEDIC_CONFIG; and $XDG_CONFIG_DIRS/busmedic/apps.toml for
// each system config directory.
//
// The XDG directories come from github.com/adrg/xdg, which reads the
// environment when the program starts (call xdg.Reload after changing it).
func DefaultPaths(configFlag string) Paths {
	user := configFlag
	if user == "" {
		user = os.Getenv(EnvConfig)
	}
	if user == "" {
		user = filepath.Join(xdg.ConfigHome, "busmedic", fileName)
	}
	p := Paths{User: user}
	for _, dir := range xdg.ConfigDirs {
		p.System = append(p.System, filepath.Join(dir, "busmedic", fileName))
	}
	return p
}

// Set is a loaded, validated and layered set of rules. It is immutable and
// safe for concurrent use.
type Set struct {
	rules    []Rule // most important first
	byID     map[string]int
	settings Settings
	warnings Errors
	files    []string
	globs    map[string]*regexp.Regexp
	uid      int
}

// Rules returns the rules in precedence order: those of the user file first,
// in file order, then those of the system files that the user file does not
// override. Disabled rules are included.
func (s *Set) Rules() []Rule {
	out := make([]Rule, len(s.rules))
	for i, r := range s.rules {
		out[i] = r.clone()
	}
	return out
}

// Lookup returns the rule with the given id.
func (s *Set) Lookup(id string) (Rule, bool) {
	if s == nil {
		return Rule{}, false
	}
	i, ok := s.byID[id]
	if !ok {
		return Rule{}, false
	}
	return s.rules[i].clone(), true
}

// Settings returns the layered [settings]: for each key, the value of the
// most important file that sets it, or the default.
func (s *Set) Settings() Settings { return s.settings }

// Warnings returns the problems that did not stop the load, such as an exec
// program that is not in PATH.
func (s *Set) Warnings() Errors { return slices.Clone(s.warnings) }

// Files returns the files that were read (those that exist), most
// important first.
func (s *Set) Files() []string { return slices.Clone(s.files) }

func (r Rule) clone() Rule {
	r.Names = slices.Clone(r.Names)
	r.Hook = slices.Clone(r.Hook)
	r.Exec = slices.Clone(r.Exec)
	r.After = slices.Clone(r.After)
	r.Env = maps.Clone(r.Env)
	return r
}

// Load reads, checks and layers the rules files. Missing files are skipped.
// On any error it returns Errors listing every problem of every file, and no
// set.
func Load(paths Paths) (*Set, error) {
	var problems Errors
	var docs []*document // most important first
	for _, f := range paths.Files() {
		d, err := readFile(f)
		if errors.Is(err, fs.ErrNotExist) {
			// A link to nothing (its target moved, or on a volume not
			// mounted) is not a file that is absent: its rules would
			// silently be gone.
			if target, lerr := os.Readlink(f); lerr == nil {
				problems = append(problems, Error{File: f, Reason: "a symlink to " + target + ", which does not exist"})
			}
			continue
		}
		if err != nil {
			problems = append(problems, asErrors(f, err)...)
			continue
		}
		problems = append(problems, d.problems...)
		docs = append(docs, d)
	}
	errs, warns := problems.split()
	if len(errs) > 0 {
		return nil, errs
	}
	return merge(docs, warns), nil
}

func merge(docs []*document, warns Errors) *Set {
	s := &Set{
		byID:     map[string]int{},
		settings: DefaultSettings(),
		warnings: warns,
		globs:    map[string]*regexp.Regexp{},
		uid:      os.Getuid(),
	}
	setKeys := map[string]bool{}
	for _, d := range docs {
		s.files = append(s.files, d.name)
		maps.Copy(s.globs, d.globs)
		for _, r := range d.rules {
			if _, seen := s.byID[r.ID]; !seen {
				s.byID[r.ID] = len(s.rules)
				s.rules = append(s.rules, r)
			}
		}
		// Each key of [settings] comes from the most important file that
		// sets it.
		for _, k := range settingKeys {
			if d.setKeys[k.name] && !setKeys[k.name] {
				setKeys[k.name] = true
				k.field.copyTo(&s.settings, d.settings)
			}
		}
	}
	return s
}

// asErrors turns an error into Errors naming the file.
func asErrors(file string, err error) Errors {
	var es Errors
	if errors.As(err, &es) {
		return es
	}
	var e Error
	if errors.As(err, &e) {
		return Errors{e}
	}
	return Errors{{File: file, Reason: err.Error(), err: err}}
}

// Parse checks the rules in data as if read from the file name, without
// reading that file (the programs of exec and hook are looked at all the
// same). It returns the rules of that file alone (no layering) and its
// warnings, or Errors.
func Parse(name string, data []byte) (*Set, error) {
	d := parse(name, data)
	errs, warns := d.problems.split()
	if len(errs) > 0 {
		return nil, errs
	}
	return merge([]*document{d}, warns), nil
}

// CheckFiles checks each of files alone (CheckFile), as "busmedic rules
// check" does: every error and warning goes to problems, one per line, and
// a line for each file that loads to summary ("FILE: 3 rules OK (1
// warning)"). It reports whether every file loaded.
func CheckFiles(summary, problems io.Writer, files []string) bool {
	plural := func(n int, what string) string {
		if n == 1 {
			return "1 " + what
		}
		return fmt.Sprintf("%d %ss", n, what)
	}
	ok := true
	for _, f := range files {
		set, err := CheckFile(f)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				err = Error{File: f, Reason: "no such file"}
			}
			fmt.Fprintln(problems, err)
			ok = false
			continue
		}
		line := fmt.Sprintf("%s: %s OK", f, plural(len(set.Rules()), "rule"))
		if w := set.Warnings(); len(w) > 0 {
			fmt.Fprintln(problems, w)
			line += fmt.Sprintf(" (%s)", plural(len(w), "warning"))
		}
		fmt.Fprintln(summary, line)
	}
	return ok
}

// Present returns the files of p that exist, most important first.
func (p Paths) Present() []string {
	var out []string
	for _, f := range p.Files() {
		if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
			out = append(out, f)
		}
	}
	return out
}

// CheckFile loads one file alone, with the same checks as Load, including
// the ownership and permission check. A missing file is an error.
func CheckFile(path string) (*Set, error) {
	d, err := readFile(path)
	if err != nil {
		return nil, asErrors(path, err)
	}
	errs, warns := d.problems.split()
	if len(errs) > 0 {
		return nil, errs
	}
	return merge([]*document{d}, warns), nil
}

// readFile reads and parses one file after checking that it is safe to take
// commands from. It returns an error wrapping fs.ErrNotExist for a missing
// file, and an Error wrapping ErrUnsafe for an unsafe one.
func readFile(path string) (*document, error) {
	data, err := readSafe(path)
	if err != nil {
		return nil, err
	}
	d := parse(path, data)
	if w, ok := checkPlace(path); ok {
		d.problems = append(d.problems, w)
		d.problems.sort()
	}
	return d, nil
}

// checkPlace warns when others could replace a rules file that is safe in
// itself (readSafe): its directory, or one above it, is writable by them
// (without the sticky bit) or owned by another user, or the file is a
// symlink whose target lies in such a place.
func checkPlace(path string) (Error, bool) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return Error{}, false
	}
	var ue *UnsafeError
	if err := CheckPath(abs); !errors.As(err, &ue) {
		return Error{}, false
	}
	what := ue.Path + " " + ue.Problem
	if ue.Dir {
		what = "directory " + what
	}
	if real, ok := symlinkTarget(abs); ok {
		what = "the file is a symlink to " + real + ", and " + what
	}
	return Error{File: path, Warning: true, Reason: what +
		": others could replace the rules, and busmedic runs the commands in them; fix with: " + ue.Fix}, true
}

// symlinkTarget returns what the symlink path finally points to.
func symlinkTarget(path string) (string, bool) {
	if fi, err := os.Lstat(path); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return "", false
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return "", false
	}
	if abs, err := filepath.Abs(real); err == nil {
		real = abs
	}
	return real, true
}

// readSafe reads a rules file, refusing one that others could have written.
func readSafe(path string) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO put at the path would otherwise wait for
	// a writer for good; what is not a regular file is refused below.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("read rules: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read rules: %w", err)
	}
	if err := checkSafe(path, fi); err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, Error{File: path, Reason: "not a regular file"}
	}
	const maxSize = 4 << 20
	if fi.Size() > maxSize {
		return nil, Error{File: path, Reason: fmt.Sprintf("file is larger than %d bytes", maxSize)}
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("read rules: %w", err)
	}
	if len(data) > maxSize {
		return nil, Error{File: path, Reason: fmt.Sprintf("file is larger than %d bytes", maxSize)}
	}
	return data, nil
}

// checkSafe refuses a file that is writable by group or others, or owned by
// a user other than the current user or root: busmedic runs its commands.
// For a symlink, fi is its target's, which the messages name.
func checkSafe(path string, fi fs.FileInfo) error {
	what, target := "the file", path
	if real, ok := symlinkTarget(path); ok {
		what, target = "the file is a symlink to "+real+", which", real
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		return Error{File: path, err: ErrUnsafe, Reason: fmt.Sprintf(
			"refusing to load: %s is writable by group or others (mode %04o) and busmedic runs the commands in it; fix with: chmod go-w %s",
			what, perm, target)}
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if uid := int(st.Uid); uid != 0 && uid != os.Geteuid() {
			return Error{File: path, err: ErrUnsafe, Reason: fmt.Sprintf(
				"refusing to load: %s is owned by uid %d, not by you (uid %d) or root, and busmedic runs the commands in it",
				what, uid, os.Geteuid())}
		}
	}
	return nil
}
