package logging

import "testing"

func TestLevelsRoundTrip(t *testing.T) {
	for _, name := range []string{"trace", "debug", "info", "warning", "error", "critical", "off"} {
		l, err := ParseLevel(name)
		if err != nil {
			t.Fatalf("ParseLevel(%q): %v", name, err)
		}
		if got := LevelName(l); got != name {
			t.Errorf("LevelName(ParseLevel(%q)) = %q", name, got)
		}
	}
	if l, err := ParseLevel("WARN"); err != nil || LevelName(l) != "warning" {
		t.Errorf("WARN: %v %v", l, err)
	}
	if _, err := ParseLevel("verbose"); err == nil {
		t.Error("unknown level accepted")
	}
}
