package formatter

import (
	"testing"

	"github.com/legate-proxy/legate/internal/http/message"
)

func TestTrailer(t *testing.T) {
	ctx := testContext()
	ctx.ResponseTrailers = message.Headers{{Name: "grpc-status", Value: "0"}, {Name: "grpc-message", Value: "ok"}}
	tests := []struct{ format, want string }{
		{"%TRAILER(GRPC-STATUS)%", "0"},
		{"%TRAILER(X-NONE?GRPC-MESSAGE)%", "ok"},
		{"%TRAILER(X-NONE)%", "-"},
		{"%TRAILER(GRPC-MESSAGE):1%", "o"},
	}
	for _, tt := range tests {
		f, err := Compile(tt.format)
		if err != nil {
			t.Fatalf("Compile(%q): %v", tt.format, err)
		}
		if got := f.Format(ctx); got != tt.want {
			t.Errorf("Format(%q) = %q, want %q", tt.format, got, tt.want)
		}
	}
	if _, err := Compile("%TRAILER%"); err == nil {
		t.Fatal("TRAILER without a name compiled")
	}
}

// TestNoRequest is a TCP connection's context: stream info only.
func TestNoRequest(t *testing.T) {
	ctx := testContext()
	ctx.Request, ctx.ResponseHeaders = nil, nil
	for name := range simpleOps {
		f, err := Compile("%" + name + "%")
		if err != nil {
			t.Fatal(err)
		}
		_ = f.Format(ctx)
		_ = f.Format(nil)
	}
	f, err := Compile("%REQ(:PATH)% %RESP(X)% %TRAILER(Y)% %DOWNSTREAM_REMOTE_ADDRESS% %BYTES_SENT%")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.Format(ctx), "- - - 10.0.0.1:5555 20"; got != want {
		t.Fatalf("got %q want %q", got, want)
	}
	if got, want := f.Format(nil), "- - - - -"; got != want {
		t.Fatalf("nil context: got %q want %q", got, want)
	}
}

func TestAppendTyped(t *testing.T) {
	ctx := testContext()
	tests := []struct {
		format string
		want   string
		kind   Kind
	}{
		{"%RESPONSE_CODE%", "503", KindNumber},
		{"%BYTES_SENT%", "20", KindNumber},
		{"%DURATION%", "1500", KindNumber},
		{"%DOWNSTREAM_REMOTE_PORT%", "5555", KindNumber},
		{"%CONNECTION_ID%", "42", KindNumber},
		{"%PROTOCOL%", "HTTP/2", KindString},
		{"%REQ(X-MISSING)%", "", KindMissing},
		{"%RESPONSE_DURATION%", "", KindMissing},
		{"code %RESPONSE_CODE%", "code 503", KindString},
		{"%REQ(USER-AGENT):2%", "cu", KindString},
		{"%RESPONSE_CODE%:%REQ(X-MISSING)%", "503:-", KindString},
		{"literal", "literal", KindString},
	}
	for _, tt := range tests {
		f, err := Compile(tt.format)
		if err != nil {
			t.Fatal(err)
		}
		got, kind := f.AppendTyped([]byte("x"), ctx)
		if string(got) != "x"+tt.want || kind != tt.kind {
			t.Errorf("AppendTyped(%q) = %q, %d; want %q, %d", tt.format, got, kind, "x"+tt.want, tt.kind)
		}
	}
}
