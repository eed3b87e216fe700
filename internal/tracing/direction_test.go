package tracing

import (
	"testing"

	zmodel "github.com/openzipkin/zipkin-go/model"
)

// traffic_direction OUTBOUND makes CLIENT spans, as in Envoy.
func TestOutboundSpanKind(t *testing.T) {
	for _, outbound := range []bool{false, true} {
		env := newZipkinEnv(t)
		deps := env.deps
		deps.Outbound = outbound
		tr := newTracer(t, hcmTracing(t, zipkinCfg(nil), ""), deps)
		sp := tr.Start(request(), streamInfo(), "")
		if sp == nil {
			t.Fatal("no span")
		}
		want := zmodel.Server
		if outbound {
			want = zmodel.Client
		}
		if got := zipkinModel(sp).Kind; got != want {
			t.Errorf("outbound=%v: kind %s, want %s", outbound, got, want)
		}
		if outbound && (otelKind(true).String() != "SPAN_KIND_CLIENT" || tr.kindName() != "CLIENT") {
			t.Errorf("OpenTelemetry kind %s, dashboard kind %s", otelKind(true), tr.kindName())
		}
	}
}
