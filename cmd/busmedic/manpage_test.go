package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/adrg/xdg"

	"busmedic/cmd/busmedic/internal/cli"
)

// The man pages are made here, from the command table (busmedic(1)) and
// from docs/rules.md and docs/editor.md (busmedic-apps.toml(5),
// busmedic-rules(1)), and committed under docs/man, where make install
// takes them: TestManPages fails when a committed page is not what its
// source gives. Refresh them with
//
//	go test ./cmd/busmedic -run ManPages -update
var update = flag.Bool("update", false, "rewrite the committed man pages in docs/man")

// manDate is the date in the pages' headers: fixed, so that a page
// changes only when its text does.
const manDate = "2025-01-01"

type manPage struct {
	file string // under docs/man
	text func(t *testing.T) string
}

var manPages = []manPage{
	{"busmedic.1", func(*testing.T) string { return commandPage(topLevel()) }},
	{"busmedic-apps.toml.5", func(t *testing.T) string {
		return markdownPage(t, "../../docs/rules.md", "BUSMEDIC-APPS.TOML", "5", "File Formats",
			"busmedic-apps.toml \\- busmedic's relaunch rules (apps.toml)",
			"busmedic(1), busmedic-rules(1), systemd.unit(5), systemd.service(5)")
	}},
	{"busmedic-rules.1", func(t *testing.T) string {
		return markdownPage(t, "../../docs/editor.md", "BUSMEDIC-RULES", "1", "User Commands",
			"busmedic-rules \\- the editor window of busmedic's relaunch rules",
			"busmedic(1), busmedic-apps.toml(5)")
	}},
}

func TestManPages(t *testing.T) {
	for _, p := range manPages {
		t.Run(p.file, func(t *testing.T) {
			path := filepath.Join("..", "..", "docs", "man", p.file)
			want := p.text(t)
			if *update {
				if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != want {
				t.Fatalf("%s is not what its source gives: refresh it with go test ./cmd/busmedic -run ManPages -update", path)
			}
			// man renders it without a warning.
			if _, err := exec.LookPath("man"); err != nil {
				t.Skip("man not installed (scripts/ensure-deps test installs it)")
			}
			cmd := exec.Command("man", "--warnings", "-l", path)
			cmd.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat", "LC_ALL=C.UTF-8")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil || stderr.Len() > 0 || len(out) == 0 {
				t.Errorf("man --warnings -l %s: %v\n%s", path, err, stderr.String())
			}
		})
	}
}

// commandPage is busmedic(1): the usage, about text, options and
// subcommands of the command table, as help prints them.
func commandPage(top *cli.Command) string {
	var b strings.Builder
	fmt.Fprintf(&b, ".TH BUSMEDIC 1 %s busmedic \"User Commands\"\n", manDate)
	b.WriteString(".SH NAME\nbusmedic \\- keep a desktop session usable when a D\\-Bus bus restarts\n")
	b.WriteString(".SH SYNOPSIS\n")
	b.WriteString(".B " + roffText(top.Usage) + "\n")
	b.WriteString(".SH DESCRIPTION\n")
	b.WriteString(roffParagraphs(top.About))
	b.WriteString(".SH OPTIONS\n")
	b.WriteString(flagList(top))
	b.WriteString(".SH COMMANDS\n")
	var walk func(c *cli.Command, depth int)
	walk = func(c *cli.Command, depth int) {
		for _, s := range c.Subs {
			if s.Name == "help" && depth > 0 {
				continue
			}
			b.WriteString(".SS \"" + roffText(s.Usage) + "\"\n")
			b.WriteString(roffParagraphs(s.About))
			if fl := flagList(s); fl != "" {
				b.WriteString(".PP\nOptions:\n" + fl)
			}
			walk(s, depth+1)
		}
	}
	walk(top, 0)
	b.WriteString(".SH ENVIRONMENT\n.TP\n.B BUSMEDIC_CONFIG\nthe user rules file, unless \\fB\\-\\-config\\fR names one.\n")
	b.WriteString(".TP\n.B JOURNAL_STREAM\nset by systemd: busmedic then logs to the journal with fields and message ids (see the README).\n")
	b.WriteString(".SH FILES\n.TP\n.I ~/.config/busmedic/apps.toml\nthe user rules file; see busmedic\\-apps.toml(5).\n")
	b.WriteString(".TP\n.I /etc/xdg/busmedic/apps.toml\nthe system rules file.\n")
	b.WriteString(".SH SEE ALSO\nbusmedic\\-apps.toml(5), busmedic\\-rules(1), journalctl(1), dbus\\-daemon(1)\n")
	return b.String()
}

// flagList is a command's own flags, as .TP entries.
func flagList(c *cli.Command) string {
	if c.Flags == nil {
		return ""
	}
	fs := c.FlagSet()
	var b strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		dash := "\\-\\-"
		if len(f.Name) == 1 {
			dash = "\\-"
		}
		b.WriteString(".TP\n\\fB" + dash + roffText(f.Name) + "\\fR")
		if name != "" {
			b.WriteString(" \\fI" + roffText(name) + "\\fR")
		}
		b.WriteString("\n" + roffText(usage))
		if def := portable(f.DefValue); def != "" && def != "false" && def != "0" {
			b.WriteString(" (default " + roffText(def) + ")")
		}
		b.WriteString("\n")
	})
	return b.String()
}

// portable is a flag's default as the page says it for everyone: the
// directories of the machine that made the page by their variables.
func portable(def string) string {
	for _, d := range []struct{ dir, name string }{
		{xdg.RuntimeDir, "$XDG_RUNTIME_DIR"},
		{xdg.StateHome, "$XDG_STATE_HOME"},
		{xdg.ConfigHome, "$XDG_CONFIG_HOME"},
	} {
		if rest, ok := strings.CutPrefix(def, d.dir+"/"); ok && d.dir != "" {
			return d.name + "/" + rest
		}
	}
	return def
}

// roffParagraphs is text with blank lines between paragraphs.
func roffParagraphs(s string) string {
	var b strings.Builder
	for i, p := range strings.Split(s, "\n\n") {
		if i > 0 {
			b.WriteString(".PP\n")
		}
		b.WriteString(roffText(strings.ReplaceAll(p, "\n", " ")) + "\n")
	}
	return b.String()
}

// roffText escapes plain text for roff: backslashes, hyphens, and a
// leading dot or quote.
func roffText(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

var (
	mdCode   = regexp.MustCompile("`([^`]+)`")
	mdBold   = regexp.MustCompile(`\*\*([^*]+)\*\*`)
	mdItalic = regexp.MustCompile(`\*([^* ][^*]*)\*`)
	mdLink   = regexp.MustCompile(`\[([^\]]+)\]\(([^)]+)\)`)
	mdImage  = regexp.MustCompile(`^!\[[^\]]*\]\([^)]*\)$`)
	mdNumber = regexp.MustCompile(`^(\d+)\. (.*)$`)
)

// roffInline is a line of Markdown text in roff: code and bold in bold,
// emphasis in italics, a link as its text (and address, when it is one).
func roffInline(s string) string {
	s = mdLink.ReplaceAllStringFunc(s, func(m string) string {
		g := mdLink.FindStringSubmatch(m)
		if strings.HasPrefix(g[2], "http") {
			return g[1] + " <" + g[2] + ">"
		}
		return g[1]
	})
	// Escape first, then mark up: the markers have no characters roff
	// minds.
	s = roffText(s)
	s = mdCode.ReplaceAllString(s, `\fB$1\fR`)
	s = mdBold.ReplaceAllString(s, `\fB$1\fR`)
	s = mdItalic.ReplaceAllString(s, `\fI$1\fR`)
	return s
}

// markdownPage converts a Markdown document to a man page: its first
// heading is left out (NAME says it), "##" headings are sections, deeper
// ones subsections; code blocks are shown as they are; tables become one
// tagged paragraph per row; pictures and HTML comments are left out.
func markdownPage(t *testing.T, path, title, section, manual, name, seeAlso string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, ".TH %s %s %s busmedic \"%s\"\n.SH NAME\n%s\n.SH DESCRIPTION\n", title, section, manDate, manual, name)
	lines := joinLines(strings.Split(strings.TrimRight(string(data), "\n"), "\n"))
	var header []string // the table's header cells
	inComment, inCode, para := false, false, false
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		trim := strings.TrimSpace(l)
		switch {
		case inComment:
			inComment = !strings.Contains(l, "-->")
			continue
		case strings.HasPrefix(trim, "<!--"):
			inComment = !strings.Contains(l, "-->")
			continue
		case strings.HasPrefix(trim, "```"):
			if inCode {
				b.WriteString(".fi\n.RE\n")
			} else {
				b.WriteString(".PP\n.RS 4\n.nf\n")
			}
			inCode, para = !inCode, false
			continue
		case inCode:
			b.WriteString(roffText(l) + "\n")
			continue
		}
		switch {
		case trim == "":
			para = false
			header = nil
		case strings.HasPrefix(l, "# "):
			// The title: NAME has it.
		case strings.HasPrefix(l, "## "):
			b.WriteString(".SH \"" + strings.ToUpper(roffInline(l[3:])) + "\"\n")
			para = false
		case strings.HasPrefix(l, "#"):
			b.WriteString(".SS \"" + roffInline(strings.TrimLeft(l, "# ")) + "\"\n")
			para = false
		case mdImage.MatchString(trim):
		case strings.HasPrefix(trim, "|"):
			cells := tableCells(trim)
			if header == nil {
				header = cells
				i++ // the |---| line
				continue
			}
			b.WriteString(".TP\n" + roffInline(cells[0]) + "\n")
			for j, c := range cells[1:] {
				if j > 0 {
					b.WriteString(".br\n")
				}
				h := ""
				if j+1 < len(header) {
					h = header[j+1] + ": "
				}
				b.WriteString(roffInline(h+c) + "\n")
			}
		case strings.HasPrefix(l, "* ") || strings.HasPrefix(l, "- "):
			b.WriteString(".IP \\(bu 2\n" + roffInline(l[2:]) + "\n")
			para = true
		case mdNumber.MatchString(l):
			m := mdNumber.FindStringSubmatch(l)
			b.WriteString(".IP " + m[1] + ". 4\n" + roffInline(m[2]) + "\n")
			para = true
		default:
			if !para && !strings.HasPrefix(l, " ") {
				b.WriteString(".PP\n")
			}
			para = true
			b.WriteString(roffInline(trim) + "\n")
		}
	}
	b.WriteString(".SH \"SEE ALSO\"\n" + roffText(seeAlso) + "\n")
	return b.String()
}

// joinLines joins the lines of a paragraph or list item into one, so
// that code and emphasis that go over a line break are seen whole.
func joinLines(lines []string) []string {
	var out []string
	inCode, text := false, false
	for _, l := range lines {
		trim := strings.TrimSpace(l)
		block := trim == "" || strings.HasPrefix(trim, "#") || strings.HasPrefix(trim, "|") ||
			strings.HasPrefix(trim, "<!--") || strings.HasPrefix(l, "* ") || strings.HasPrefix(l, "- ") ||
			mdNumber.MatchString(l) || mdImage.MatchString(trim)
		switch {
		case strings.HasPrefix(trim, "```"):
			inCode, text = !inCode, false
			out = append(out, l)
		case inCode:
			out = append(out, l)
		case !block && text:
			out[len(out)-1] += " " + trim
		default:
			out = append(out, l)
			text = trim != "" && !strings.HasPrefix(trim, "#") && !strings.HasPrefix(trim, "|") && !strings.HasPrefix(trim, "<!--")
		}
	}
	return out
}

// tableCells splits a Markdown table row into its cells.
func tableCells(row string) []string {
	row = strings.TrimSuffix(strings.TrimPrefix(row, "|"), "|")
	var cells []string
	for c := range strings.SplitSeq(row, "|") {
		cells = append(cells, strings.TrimSpace(c))
	}
	return cells
}
