package registry

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
)

func TestLookupByTypeURL(t *testing.T) {
	r := New[string]("test extension")
	r.Register(&durationpb.Duration{}, "duration factory")
	a, err := anypb.New(durationpb.New(5))
	if err != nil {
		t.Fatal(err)
	}
	f, msg, err := r.Lookup(a)
	if err != nil || f != "duration factory" {
		t.Fatalf("Lookup = %q, %v", f, err)
	}
	if d, ok := msg.(*durationpb.Duration); !ok || d.AsDuration() != 5 {
		t.Fatalf("unpacked %v", msg)
	}

	other, _ := anypb.New(&structpb.Struct{})
	if _, _, err := r.Lookup(other); err == nil || !strings.Contains(err.Error(), "google.protobuf.Struct is not supported as a test extension") {
		t.Fatalf("unregistered type: %v", err)
	}
	if _, _, err := r.Lookup(nil); err == nil {
		t.Fatal("nil typed_config accepted")
	}
	if got := r.Names(); len(got) != 1 || got[0] != "google.protobuf.Duration" {
		t.Fatalf("Names = %v", got)
	}
}

func TestRegisterTwicePanics(t *testing.T) {
	r := New[int]("test")
	r.Register(&durationpb.Duration{}, 1)
	defer func() {
		if recover() == nil {
			t.Fatal("second registration did not panic")
		}
	}()
	r.Register(&durationpb.Duration{}, 2)
}
