package formatter

import (
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	"github.com/legate-proxy/legate/internal/streaminfo"
)

// dynamicContext carries Envoy's documentation example:
// com.test.my_filter: {"test_key": "foo", "test_object": {"inner_key": "bar"}}
func dynamicContext(t *testing.T) *Context {
	t.Helper()
	ctx := testContext()
	var d streaminfo.Dynamic
	st, err := structpb.NewStruct(map[string]any{
		"test_key": "foo", "test_object": map[string]any{"inner_key": "bar"},
		"n": 5, "f": 2.5, "b": true, "l": []any{"x", 1}, "nil": nil,
	})
	if err != nil {
		t.Fatal(err)
	}
	d.SetMetadata("com.test.my_filter", st)
	d.SetFilterState("envoy.tcp_proxy.cluster", streaminfo.StringObject("cluster_1"))
	ctx.Info.Dynamic = &d
	return ctx
}

func TestDynamicMetadataAndFilterState(t *testing.T) {
	ctx := dynamicContext(t)
	tests := []struct {
		format, want string
		kind         Kind
		typed        string
	}{
		{"%DYNAMIC_METADATA(com.test.my_filter:test_key)%", "foo", KindString, "foo"},
		{"%DYNAMIC_METADATA(com.test.my_filter:test_object)%", `{"inner_key":"bar"}`, KindJSON, `{"inner_key":"bar"}`},
		{"%DYNAMIC_METADATA(com.test.my_filter:test_object:inner_key)%", "bar", KindString, "bar"},
		{"%DYNAMIC_METADATA(com.test.my_filter:n)%", "5", KindNumber, "5"},
		{"%DYNAMIC_METADATA(com.test.my_filter:f)%", "2.5", KindNumber, "2.5"},
		{"%DYNAMIC_METADATA(com.test.my_filter:b)%", "true", KindJSON, "true"},
		{"%DYNAMIC_METADATA(com.test.my_filter:l)%", `["x",1]`, KindJSON, `["x",1]`},
		{"%DYNAMIC_METADATA(com.test.my_filter:nil)%", "-", KindMissing, ""},
		{"%DYNAMIC_METADATA(com.unknown_filter)%", "-", KindMissing, ""},
		{"%DYNAMIC_METADATA(com.test.my_filter:unknown_key)%", "-", KindMissing, ""},
		{"%DYNAMIC_METADATA(com.test.my_filter:test_key:deeper)%", "-", KindMissing, ""},
		{"%DYNAMIC_METADATA(com.test.my_filter):25%", `{"b":true,"f":2.5,"l":["x`, KindJSON,
			`{"b":true,"f":2.5,"l":["x",1],"n":5,"nil":null,"test_key":"foo","test_object":{"inner_key":"bar"}}`},
		{"%FILTER_STATE(envoy.tcp_proxy.cluster)%", `"cluster_1"`, KindJSON, `"cluster_1"`},
		{"%FILTER_STATE(envoy.tcp_proxy.cluster:TYPED)%", `"cluster_1"`, KindJSON, `"cluster_1"`},
		{"%FILTER_STATE(envoy.tcp_proxy.cluster:PLAIN)%", "cluster_1", KindString, "cluster_1"},
		{"%FILTER_STATE(envoy.tcp_proxy.cluster:PLAIN):4%", "clus", KindString, "cluster_1"},
		{"%FILTER_STATE(missing)%", "-", KindMissing, ""},
	}
	for _, tt := range tests {
		f, err := Compile(tt.format)
		if err != nil {
			t.Fatalf("Compile(%q): %v", tt.format, err)
		}
		if got := f.Format(ctx); got != tt.want {
			t.Errorf("Format(%q) = %q, want %q", tt.format, got, tt.want)
		}
		typed, kind := f.AppendTyped(nil, ctx)
		if kind != tt.kind || string(typed) != tt.typed {
			t.Errorf("AppendTyped(%q) = %s (kind %d), want %s (kind %d)", tt.format, typed, kind, tt.typed, tt.kind)
		}
		// Nothing set anywhere: missing, whatever the operator.
		if got := f.Format(testContext()); got != "-" {
			t.Errorf("Format(%q) without dynamic data = %q", tt.format, got)
		}
	}
}

func TestDynamicCompileErrors(t *testing.T) {
	for _, format := range []string{
		"%DYNAMIC_METADATA%", "%DYNAMIC_METADATA()%", "%DYNAMIC_METADATA(ns::k)%", "%DYNAMIC_METADATA(:k)%",
		"%FILTER_STATE%", "%FILTER_STATE(:PLAIN)%", "%FILTER_STATE(k:JSON)%", "%FILTER_STATE(k:TYPED:field)%",
	} {
		if _, err := Compile(format); err == nil {
			t.Errorf("%s compiled", format)
		}
	}
}

// Reading dynamic operators when no filter set anything allocates nothing.
func TestDynamicNoAllocsWhenEmpty(t *testing.T) {
	f, err := Compile("%DYNAMIC_METADATA(ns:key)% %FILTER_STATE(k)% %FILTER_STATE(k:PLAIN)%")
	if err != nil {
		t.Fatal(err)
	}
	ctx := testContext()
	var conn, stream streaminfo.Dynamic
	stream.Reset(&conn)
	ctx.Info.Dynamic = &stream
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() { buf = f.Append(buf[:0], ctx) }); n != 0 {
		t.Errorf("%v allocations per line", n)
	}
}
