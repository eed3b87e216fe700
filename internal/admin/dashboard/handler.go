package dashboard

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"strconv"
	"time"
)

// entityData is one listener or cluster in the polled JSON.
type entityData struct {
	Key     string `json:"key"`
	Name    string `json:"name"`
	Address string `json:"address,omitempty"`
	HTTP    string `json:"http,omitempty"` // HCM stat prefix
	// Cumulative totals and current values at the latest sample.
	Totals totals `json:"totals"`
	Active int64  `json:"active"`
	// Clusters only.
	Healthy *int64     `json:"healthy,omitempty"`
	Members *int64     `json:"members,omitempty"`
	Hosts   []hostData `json:"hosts,omitempty"`
	// Points newer than ?since=.
	Points []point `json:"points"`
}

type totals struct {
	Rq    uint64    `json:"rq"`
	Class [5]uint64 `json:"cls"`
	Rx    uint64    `json:"rx"`
	Tx    uint64    `json:"tx"`
	Cx    uint64    `json:"cx"`
}

type procData struct {
	Points []procPoint `json:"points"`
}

// dataResponse is GET /dashboard/data.
type dataResponse struct {
	Now             int64            `json:"now"` // unix ms of the latest sample
	IntervalMs      int64            `json:"interval_ms"`
	HistoryMs       int64            `json:"history_ms"`
	RateWindowMs    int64            `json:"rate_window_ms"`
	LatencyWindowMs int64            `json:"latency_window_ms"`
	UptimeS         int64            `json:"uptime_s"`
	Server          map[string]int64 `json:"server"` // server.* gauges
	Process         procData         `json:"process"`
	Listeners       []entityData     `json:"listeners"`
	Clusters        []entityData     `json:"clusters"`
	// Traces is null when no span ring is configured.
	Traces []traceSummary `json:"traces"`
}

func (d *Dashboard) routes() http.Handler {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "assets")
	files := http.FileServerFS(static)
	mux.Handle("GET /{$}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.ServeFileFS(w, r, static, "index.html")
	}))
	mux.Handle("GET /dashboard/static/", http.StripPrefix("/dashboard/static/", files))
	mux.HandleFunc("GET /dashboard/data", d.serveData)
	mux.HandleFunc("GET /dashboard/trace", d.serveTrace)
	return mux
}

func (d *Dashboard) serveData(w http.ResponseWriter, r *http.Request) {
	var since int64
	if v := r.URL.Query().Get("since"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			http.Error(w, "since: want unix milliseconds", http.StatusBadRequest)
			return
		}
		since = n
	}
	resp := d.data(since)
	if d.deps.Ring != nil {
		resp.Traces = recentTraces(d.deps.Ring.Snapshot())
	}
	writeJSON(w, resp)
}

func (d *Dashboard) serveTrace(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	if d.deps.Ring == nil || id == "" {
		http.Error(w, "no such trace", http.StatusNotFound)
		return
	}
	t, ok := traceByID(d.deps.Ring.Snapshot(), id)
	if !ok {
		http.Error(w, "no such trace (it may have left the span ring)", http.StatusNotFound)
		return
	}
	writeJSON(w, t)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	// An error here is a client gone away; nobody to tell.
	_ = json.NewEncoder(w).Encode(v)
}

// data copies what the page has not seen (points after since) under the
// lock; encoding happens after it is released.
func (d *Dashboard) data(since int64) dataResponse {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := &d.s
	resp := dataResponse{
		Now:             s.now.UnixMilli(),
		IntervalMs:      d.deps.Interval.Milliseconds(),
		HistoryMs:       d.deps.History.Milliseconds(),
		RateWindowMs:    d.deps.RateWindow.Milliseconds(),
		LatencyWindowMs: d.deps.LatencyWindow.Milliseconds(),
		UptimeS:         int64(time.Since(d.deps.Start) / time.Second),
		Server:          make(map[string]int64, len(s.server)),
		Process:         procData{Points: after(s.procPts, func(p procPoint) int64 { return p.T }, since)},
		Listeners:       []entityData{},
		Clusters:        []entityData{},
	}
	if s.now.IsZero() {
		resp.Now = 0
	}
	for k, v := range s.server {
		resp.Server[k] = v
	}
	for _, e := range s.order {
		ed := entityData{
			Key: e.key, Name: e.name, Address: e.address, HTTP: e.http, Active: e.active,
			Totals: totals{Rq: e.last.rq, Class: e.last.class, Rx: e.last.rx, Tx: e.last.tx, Cx: e.last.cx},
			Points: after(e.pts, func(p point) int64 { return p.T }, since),
		}
		if e.kind == "cluster" {
			h, m := e.healthy, e.members
			ed.Healthy, ed.Members = &h, &m
			ed.Hosts = append([]hostData{}, e.hosts...)
			resp.Clusters = append(resp.Clusters, ed)
		} else {
			resp.Listeners = append(resp.Listeners, ed)
		}
	}
	return resp
}

// after copies the points with a time after since.
func after[T any](pts []T, at func(T) int64, since int64) []T {
	i := len(pts)
	for i > 0 && at(pts[i-1]) > since {
		i--
	}
	return append(make([]T, 0, len(pts)-i), pts[i:]...)
}
