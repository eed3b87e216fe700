package accesslog

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/legate-proxy/legate/internal/http/message"
)

// FuzzJSONLine: whatever a header holds, a JSON line is valid JSON and a
// valid UTF-8 value round-trips exactly.
func FuzzJSONLine(f *testing.F) {
	for _, s := range []string{"", "plain", `q"uote\back`, "ctl\x00\x1f\x7f", "é€😀", "bad\xff\xfeutf8", "\u2028"} {
		f.Add(s)
	}
	st, err := structpb.NewStruct(map[string]any{"v": "%REQ(X-V)%", "mixed": "<%REQ(X-V)%>", "code": "%RESPONSE_CODE%"})
	if err != nil {
		f.Fatal(err)
	}
	typed, err := compileJSON(st, true, false)
	if err != nil {
		f.Fatal(err)
	}
	untyped, err := compileJSON(st, false, false)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, v string) {
		ctx := httpContext()
		ctx.Request.Header = message.Headers{{Name: "x-v", Value: v}}
		for _, lf := range []lineFormat{typed, untyped} {
			line := lf.appendLine(nil, ctx)
			var got map[string]any
			if err := json.Unmarshal(line, &got); err != nil {
				t.Fatalf("value %q: invalid JSON %s: %v", v, line, err)
			}
			if v != "" && utf8.ValidString(v) && (got["v"] != v || got["mixed"] != "<"+v+">") {
				t.Fatalf("value %q rendered as %s", v, line)
			}
		}
	})
}
