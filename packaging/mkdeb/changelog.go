package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
)

// release is one "## <version> - <date>" section of CHANGELOG.md.
type release struct {
	Version string
	Date    time.Time
	Items   []string // bullet points, continuation lines joined by spaces
}

var headingRE = regexp.MustCompile(`^## ([0-9][0-9A-Za-z.+~]*) - ([0-9]{4}-[0-9]{2}-[0-9]{2})\s*$`)

// parseChangelog reads CHANGELOG.md: text before the first release heading
// is an introduction and ignored; every release needs at least one bullet,
// so an entry is never published empty.
func parseChangelog(r io.Reader) ([]release, error) {
	var (
		rels []release
		cur  *release
		line int
	)
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), " \t")
		if m := headingRE.FindStringSubmatch(text); m != nil {
			date, err := time.Parse(time.DateOnly, m[2])
			if err != nil {
				return nil, fmt.Errorf("line %d: date %q: %w", line, m[2], err)
			}
			rels = append(rels, release{Version: m[1], Date: date})
			cur = &rels[len(rels)-1]
			continue
		}
		if strings.HasPrefix(text, "## ") {
			return nil, fmt.Errorf("line %d: release heading %q is not \"## <version> - <YYYY-MM-DD>\"", line, text)
		}
		if cur == nil {
			continue
		}
		switch {
		case text == "":
		case strings.HasPrefix(text, "- "):
			cur.Items = append(cur.Items, strings.TrimSpace(text[2:]))
		case strings.HasPrefix(text, "  ") && len(cur.Items) > 0:
			cur.Items[len(cur.Items)-1] += " " + strings.TrimSpace(text)
		default:
			return nil, fmt.Errorf("line %d: %q is neither a \"- \" bullet nor its indented continuation", line, text)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(rels) == 0 {
		return nil, fmt.Errorf("no \"## <version> - <YYYY-MM-DD>\" release heading")
	}
	for _, r := range rels {
		if len(r.Items) == 0 {
			return nil, fmt.Errorf("release %s has no bullet points", r.Version)
		}
	}
	return rels, nil
}

// debianChangelog renders releases in debian/changelog format (see
// deb-changelog(5)); every upstream release becomes Debian revision
// debRevision. Lines are wrapped to stay within 80 columns.
func debianChangelog(pkg, debRevision, maintainer string, rels []release) []byte {
	var b bytes.Buffer
	for i, r := range rels {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s (%s-%s) unstable; urgency=medium\n\n", pkg, r.Version, debRevision)
		for _, item := range r.Items {
			for j, l := range wrap(item, 76) {
				if j == 0 {
					b.WriteString("  * ")
				} else {
					b.WriteString("    ")
				}
				b.WriteString(l)
				b.WriteByte('\n')
			}
		}
		fmt.Fprintf(&b, "\n -- %s  %s\n", maintainer, r.Date.UTC().Format(time.RFC1123Z))
	}
	return b.Bytes()
}

// wrap splits text into lines of at most width runes where word lengths
// allow it.
func wrap(text string, width int) []string {
	var (
		lines []string
		cur   strings.Builder
	)
	for _, w := range strings.Fields(text) {
		if cur.Len() > 0 && len([]rune(cur.String()))+1+len([]rune(w)) > width {
			lines = append(lines, cur.String())
			cur.Reset()
		}
		if cur.Len() > 0 {
			cur.WriteByte(' ')
		}
		cur.WriteString(w)
	}
	if cur.Len() > 0 {
		lines = append(lines, cur.String())
	}
	return lines
}
