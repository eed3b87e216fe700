package hcm

import (
	"strings"
	"testing"
)

func TestNormalizePath(t *testing.T) {
	norm := PathOptions{Normalize: true}
	merge := PathOptions{MergeSlashes: true}
	all := PathOptions{Normalize: true, MergeSlashes: true}
	reject := PathOptions{EscapedSlashes: EscapedSlashesReject}
	redirect := PathOptions{Normalize: true, MergeSlashes: true, EscapedSlashes: EscapedSlashesUnescapeRedirect}
	forward := PathOptions{Normalize: true, EscapedSlashes: EscapedSlashesUnescapeForward}
	for _, tc := range []struct {
		name string
		o    PathOptions
		in   string
		want string
		v    pathVerdict
	}{
		{"off", PathOptions{}, "/pub/../admin", "/pub/../admin", pathContinue},
		{"parent", norm, "/pub/../admin", "/admin", pathContinue},
		{"current", norm, "/a/./b", "/a/b", pathContinue},
		{"encoded dots", norm, "/pub/%2e%2e/admin", "/admin", pathContinue},
		{"encoded dots upper", norm, "/pub/%2E%2E/admin", "/admin", pathContinue},
		{"unreserved decoded", norm, "/%41b%7e%2d", "/Ab~-", pathContinue},
		{"reserved kept", norm, "/a%20b%2Fc%3F", "/a%20b%2Fc%3F", pathContinue},
		{"backslash", norm, "/a/..\\c", "/c", pathContinue},
		{"trailing dotdot", norm, "/a/b/..", "/a/", pathContinue},
		{"trailing dot", norm, "/a/b/.", "/a/b/", pathContinue},
		{"to root", norm, "/a/..", "/", pathContinue},
		{"dots in names", norm, "/a/..b/.c/...", "/a/..b/.c/...", pathContinue},
		{"query kept", norm, "/a/../b?x=/../y&z=%2e", "/b?x=/../y&z=%2e", pathContinue},
		{"above root", norm, "/../../etc/passwd", "/../../etc/passwd", pathReject},
		{"above root later", norm, "/a/../../b", "/a/../../b", pathReject},
		{"encoded above root", norm, "/%2e%2e/x", "/%2e%2e/x", pathReject},
		{"malformed escape", norm, "/a%zz", "/a%zz", pathReject},
		{"truncated escape", norm, "/a%2", "/a%2", pathReject},
		{"asterisk", norm, "*", "*", pathContinue},
		{"empty segments kept", norm, "//a//b", "//a//b", pathContinue},
		{"merge", merge, "//a//b///c", "/a/b/c", pathContinue},
		{"merge keeps query", merge, "/a//b?x=//y", "/a/b?x=//y", pathContinue},
		{"merge after normalize", all, "//a/../b//c", "/b/c", pathContinue},
		{"keep escaped slash", norm, "/a%2Fb", "/a%2Fb", pathContinue},
		{"reject escaped slash", reject, "/a%2fb", "/a%2fb", pathReject},
		{"reject escaped backslash", reject, "/a%5Cb", "/a%5Cb", pathReject},
		{"reject ignores query", reject, "/a?b=%2F", "/a?b=%2F", pathContinue},
		{"redirect", redirect, "/a%2F..%2Fb", "/b", pathRedirect},
		{"redirect backslash", redirect, "/a%5cb", "/a/b", pathRedirect},
		{"redirect only when escaped", redirect, "/a/../b", "/b", pathContinue},
		{"forward", forward, "/a%2Fb%2F..%2Fc", "/a/c", pathContinue},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, v := tc.o.normalizePath(tc.in)
			if v != tc.v || (v != pathReject && got != tc.want) {
				t.Errorf("normalizePath(%q) = %q, %d; want %q, %d", tc.in, got, v, tc.want, tc.v)
			}
		})
	}
}

func TestStripHostPort(t *testing.T) {
	matching := PathOptions{StripPort: StripPortMatching}
	anyPort := PathOptions{StripPort: StripPortAny}
	for _, tc := range []struct {
		o         PathOptions
		authority string
		method    string
		want      string
	}{
		{PathOptions{}, "a:80", "GET", "a:80"},
		{matching, "a:80", "GET", "a"},
		{matching, "a:81", "GET", "a:81"},
		{matching, "[::1]:80", "GET", "[::1]"},
		{matching, "[::1]", "GET", "[::1]"},
		{anyPort, "a:9999", "GET", "a"},
		{anyPort, "a:x", "GET", "a:x"},
		{anyPort, "a", "GET", "a"},
		{anyPort, "a:443", "CONNECT", "a:443"},
	} {
		if got := tc.o.stripHostPort(tc.authority, tc.method, 80); got != tc.want {
			t.Errorf("%+v: stripHostPort(%q, %s) = %q, want %q", tc.o, tc.authority, tc.method, got, tc.want)
		}
	}
}

// An already-normal path, the common case, costs no allocation.
func TestNormalizePathNormalAllocatesNothing(t *testing.T) {
	o := PathOptions{Normalize: true, MergeSlashes: true, EscapedSlashes: EscapedSlashesUnescapeRedirect, StripPort: StripPortMatching}
	p := "/api/v1/users/42/profile.json?fields=a,b&x=%20"
	if n := testing.AllocsPerRun(100, func() {
		if got, v := o.normalizePath(p); got != p || v != pathContinue {
			t.Fatalf("changed: %q %d", got, v)
		}
		o.stripHostPort("example.com:8080", "GET", 80)
	}); n != 0 {
		t.Errorf("%v allocations per normal path, want 0", n)
	}
}

func BenchmarkNormalizePath(b *testing.B) {
	o := PathOptions{Normalize: true, MergeSlashes: true, EscapedSlashes: EscapedSlashesUnescapeRedirect}
	for _, bc := range []struct{ name, path string }{
		{"normal", "/api/v1/users/42/profile.json?fields=a,b"},
		{"dotdot", "/api/v1/../v2/users/%2e%2e/42"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				o.normalizePath(bc.path)
			}
		})
	}
}

// FuzzNormalizePath: whatever the path, normalization with everything on
// either refuses it or yields a path with no dot segments, no escaped or
// doubled slashes and no backslash, that normalizes to itself.
func FuzzNormalizePath(f *testing.F) {
	o := PathOptions{Normalize: true, MergeSlashes: true, EscapedSlashes: EscapedSlashesUnescapeForward}
	f.Fuzz(func(t *testing.T, p string) {
		got, v := o.normalizePath(p)
		if v == pathReject || p == "" || p[0] != '/' {
			return
		}
		path := got
		if i := strings.IndexByte(got, '?'); i >= 0 {
			path = got[:i]
			if got[i:] != p[strings.IndexByte(p, '?'):] {
				t.Fatalf("%q → %q: query changed", p, got)
			}
		}
		if path == "" || path[0] != '/' || strings.Contains(path, "//") || strings.ContainsRune(path, '\\') ||
			hasEscapedSlash(path) || strings.Contains(path+"/", "/./") || strings.Contains(path+"/", "/../") {
			t.Fatalf("%q → %q: not normal", p, got)
		}
		again, v2 := o.normalizePath(got)
		if again != got || v2 != pathContinue {
			t.Fatalf("%q → %q → %q (%d): not idempotent", p, got, again, v2)
		}
	})
}
