package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseChangelog(t *testing.T) {
	tests := []struct {
		name, src string
		want      []release
		wantErr   string
	}{
		{
			name: "two releases with wrapped bullets",
			src: "# Changelog\n\nIntro text, ignored.\n\n" +
				"## 0.2.0 - 2026-12-01\n\n- Second: one\n  continued.\n- Another.\n\n" +
				"## 0.1.0 - 2026-11-22\n\n- First.\n",
			want: []release{
				{Version: "0.2.0", Date: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Items: []string{"Second: one continued.", "Another."}},
				{Version: "0.1.0", Date: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC), Items: []string{"First."}},
			},
		},
		{name: "no release", src: "# Changelog\n\nnothing yet\n", wantErr: "no \"## <version> - <YYYY-MM-DD>\" release heading"},
		{name: "malformed heading", src: "## Unreleased\n- x\n", wantErr: "line 1: release heading"},
		{name: "bad date", src: "## 1.0 - 2026-13-01\n- x\n", wantErr: "line 1: date"},
		{name: "empty release", src: "## 1.0 - 2026-01-01\n\n## 0.9 - 2025-01-01\n- x\n", wantErr: "release 1.0 has no bullet points"},
		{name: "stray text", src: "## 1.0 - 2026-01-01\n- x\nprose\n", wantErr: "line 3: \"prose\" is neither"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseChangelog(strings.NewReader(tc.src))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %d releases, want %d", len(got), len(tc.want))
			}
			for i := range got {
				g, w := got[i], tc.want[i]
				if g.Version != w.Version || !g.Date.Equal(w.Date) || strings.Join(g.Items, "|") != strings.Join(w.Items, "|") {
					t.Errorf("release %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func TestDebianChangelog(t *testing.T) {
	rels := []release{
		{Version: "0.2.0", Date: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Items: []string{
			"A long item that has to be wrapped because it goes on and on well past the seventy-six columns.",
		}},
		{Version: "0.1.0", Date: time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC), Items: []string{"First."}},
	}
	got := string(debianChangelog("legate", "1", "Legate Maintainers <m@example.org>", rels))
	want := `legate (0.2.0-1) unstable; urgency=medium

  * A long item that has to be wrapped because it goes on and on well past the
    seventy-six columns.

 -- Legate Maintainers <m@example.org>  Tue, 01 Dec 2026 00:00:00 +0000

legate (0.1.0-1) unstable; urgency=medium

  * First.

 -- Legate Maintainers <m@example.org>  Sun, 22 Nov 2026 00:00:00 +0000
`
	if got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	for _, l := range strings.Split(got, "\n") {
		if len(l) > 80 {
			t.Errorf("line longer than 80 columns: %q", l)
		}
	}
}

func TestDebianArch(t *testing.T) {
	for _, tc := range []struct{ goarch, goarm, want string }{
		{"amd64", "", "amd64"},
		{"arm64", "", "arm64"},
		{"386", "", "i386"},
		{"ppc64le", "", "ppc64el"},
		{"arm", "7", "armhf"},
		{"arm", "5", "armel"},
	} {
		got, err := debianArch(tc.goarch, tc.goarm)
		if err != nil || got != tc.want {
			t.Errorf("debianArch(%q, %q) = %q, %v; want %q", tc.goarch, tc.goarm, got, err, tc.want)
		}
	}
	if _, err := debianArch("wasm", ""); err == nil {
		t.Error("debianArch(wasm) succeeded")
	}
}
