package streaminfo

import (
	"sync"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"
)

func mustStruct(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDynamicMetadataMerges(t *testing.T) {
	var d Dynamic
	if !d.Empty() || d.Metadata("ns") != nil {
		t.Fatal("zero Dynamic is not empty")
	}
	in := mustStruct(t, map[string]any{"a": "1", "nested": map[string]any{"k": true}})
	d.SetMetadata("ns", in)
	in.Fields["a"] = structpb.NewStringValue("changed by the caller")
	d.SetMetadata("ns", mustStruct(t, map[string]any{"b": 2}))
	d.SetMetadata("other", mustStruct(t, map[string]any{"x": "y"}))
	st := d.Metadata("ns")
	if got := st.GetFields()["a"].GetStringValue(); got != "1" {
		t.Errorf("a = %q: SetMetadata must copy what it is given", got)
	}
	if got := st.GetFields()["b"].GetNumberValue(); got != 2 {
		t.Errorf("b = %v: a second SetMetadata merges into the namespace", got)
	}
	if v, ok := d.MetadataValue("ns", []string{"nested", "k"}); !ok || !v.GetBoolValue() {
		t.Errorf("nested path: %v %v", v, ok)
	}
	for _, path := range [][]string{{"missing"}, {"a", "deeper"}, nil} {
		if _, ok := d.MetadataValue("ns", path); ok {
			t.Errorf("path %v found", path)
		}
	}
	var nilD *Dynamic
	if nilD.Metadata("ns") != nil || nilD.FilterState("k") != nil || !nilD.Empty() {
		t.Error("a nil Dynamic must read as empty")
	}
}

func TestDynamicParent(t *testing.T) {
	var conn, stream Dynamic
	conn.SetFilterState("k", StringObject("from-conn"))
	conn.SetMetadata("ns", mustStruct(t, map[string]any{"c": "conn"}))
	stream.Reset(&conn)
	if got, _ := stream.FilterState("k").PlainString(); got != "from-conn" {
		t.Fatalf("stream reads %q, want the connection's", got)
	}
	stream.SetMetadata("ns", mustStruct(t, map[string]any{"s": "stream"}))
	st := stream.Metadata("ns")
	if st.GetFields()["c"].GetStringValue() != "conn" || st.GetFields()["s"].GetStringValue() != "stream" {
		t.Errorf("stream metadata %v: it starts from the connection's", st)
	}
	if _, ok := conn.Metadata("ns").GetFields()["s"]; ok {
		t.Error("a stream's write leaked into its connection")
	}
	stream.Reset(&conn)
	if _, ok := stream.Metadata("ns").GetFields()["s"]; ok {
		t.Error("Reset kept the previous stream's metadata")
	}
}

func TestDynamicConcurrentWriters(t *testing.T) {
	var d Dynamic
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				d.SetFilterState(string(rune('a'+i)), StringObject("v"))
				d.SetMetadata("ns", &structpb.Struct{Fields: map[string]*structpb.Value{string(rune('a' + i)): structpb.NewNumberValue(float64(j))}})
			}
		})
	}
	wg.Wait()
	for i := range 8 {
		k := string(rune('a' + i))
		if d.FilterState(k) == nil {
			t.Errorf("filter state %s lost", k)
		}
		if v := d.Metadata("ns").GetFields()[k].GetNumberValue(); v != 49 {
			t.Errorf("metadata %s = %v, want 49", k, v)
		}
	}
}

func TestStringObject(t *testing.T) {
	o := StringObject(`c"1`)
	if s, ok := o.PlainString(); !ok || s != `c"1` {
		t.Errorf("plain %q", s)
	}
	if b, ok := o.AppendJSON(nil); !ok || string(b) != `"c\"1"` {
		t.Errorf("json %s", b)
	}
}

func BenchmarkDynamicEmptyRead(b *testing.B) {
	var conn, stream Dynamic
	stream.Reset(&conn)
	b.ReportAllocs()
	for b.Loop() {
		if stream.FilterState("envoy.tcp_proxy.cluster") != nil || stream.Metadata("ns") != nil {
			b.Fatal("not empty")
		}
	}
}
