package jsonenc

import (
	"encoding/json"
	"math"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"
)

func TestAppendValue(t *testing.T) {
	st, err := structpb.NewStruct(map[string]any{
		"z": "last", "a": []any{1, 2.5, true, nil, "q\"\n"}, "m": map[string]any{"k": 1e21},
	})
	if err != nil {
		t.Fatal(err)
	}
	got := string(AppendStruct(nil, st))
	want := `{"a":[1,2.5,true,null,"q\"\n"],"m":{"k":1e+21},"z":"last"}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if !json.Valid([]byte(got)) {
		t.Error("not valid JSON")
	}
	if got := string(AppendValue(nil, structpb.NewNumberValue(math.NaN()))); got != `"NaN"` {
		t.Errorf("NaN: %s", got)
	}
	if got := string(AppendValue(nil, &structpb.Value{})); got != "null" {
		t.Errorf("unset kind: %s", got)
	}
}

func TestAppendString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote\back`, "ctl\x00\x1f", "é€😀", "\u2028"} {
		var back string
		if err := json.Unmarshal(AppendString(nil, s), &back); err != nil || back != s {
			t.Errorf("%q: round trip %q, %v", s, back, err)
		}
	}
	if got := string(AppendString(nil, "bad\xff")); got != `"bad\ufffd"` {
		t.Errorf("invalid UTF-8: %s", got)
	}
}
