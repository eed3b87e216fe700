package tracing

import (
	"testing"

	"github.com/legate-proxy/legate/internal/stats"
)

// benchStartFinish runs one traced request's tracing work per iteration:
// the decision, propagation headers, tags, the ring and the hand-off to
// the exporter.
func benchStartFinish(b *testing.B, collector string) {
	st := stats.NewStore()
	deps := Deps{Stats: st, Ring: NewRing(1000), NodeID: "bench",
		Clusters: staticClusters(b, st, map[string]string{"zipkin": collector})}
	tr := newTracer(b, hcmTracing(b, zipkinCfg(nil), ""), deps)
	info := finished(streamInfo())
	b.ReportAllocs()
	for b.Loop() {
		req := request("user-agent", "bench")
		tr.Start(req, info, "").Finish(req, nil, info)
	}
	b.ReportMetric(float64(st.Counter("tracing.zipkin.spans_dropped").Value())/float64(b.N), "dropped/op")
}

// BenchmarkFinishDeadCollector shows that a collector refusing connections
// costs a request nothing: Finish hands the span to a bounded queue and
// returns; the exporter fails (reports_failed) or drops (spans_dropped)
// on its own goroutine. Compare with BenchmarkFinishLiveCollector.
func BenchmarkFinishDeadCollector(b *testing.B) {
	benchStartFinish(b, deadAddr(b))
}

func BenchmarkFinishLiveCollector(b *testing.B) {
	benchStartFinish(b, newZipkinCollector(b).addr)
}
