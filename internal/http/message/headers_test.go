package message

import (
	"slices"
	"testing"
)

func TestHeadersSetDelKeepOrder(t *testing.T) {
	h := Headers{{"a", "1"}, {"b", "2"}, {"a", "3"}, {"c", "4"}}
	h.Set("a", "x")
	if want := (Headers{{"a", "x"}, {"b", "2"}, {"c", "4"}}); !slices.Equal(h, want) {
		t.Fatalf("Set: got %v want %v", h, want)
	}
	h.Del("b")
	if want := (Headers{{"a", "x"}, {"c", "4"}}); !slices.Equal(h, want) {
		t.Fatalf("Del: got %v want %v", h, want)
	}
	h.Set("d", "5")
	if v, ok := h.Get("d"); !ok || v != "5" {
		t.Fatalf("Set of a new name: got %q %v", v, ok)
	}
	if h.Has("b") {
		t.Fatal("deleted header still present")
	}
}
