package controlplane

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// maxBody bounds a registration body.
const maxBody = 64 << 10

func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/services/{service}/instances/{id}", s.putInstance)
	mux.HandleFunc("PUT /v1/services/{service}/instances/{id}/heartbeat", s.heartbeat)
	mux.HandleFunc("DELETE /v1/services/{service}/instances/{id}", s.deleteInstance)
	mux.HandleFunc("GET /v1/services", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"services": s.reg.Services()})
	})
	mux.HandleFunc("GET /v1/services/{service}", func(w http.ResponseWriter, r *http.Request) {
		svc, ok := s.reg.Service(r.PathValue("service"))
		if !ok {
			writeError(w, http.StatusNotFound, fmt.Sprintf("service %q has no instances", r.PathValue("service")))
			return
		}
		writeJSON(w, http.StatusOK, svc)
	})
	mux.HandleFunc("GET /v1/snapshot", s.snapshot)
	mux.HandleFunc("GET /v1/nodes", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"nodes": s.tracker.nodes()})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "version": s.Version()})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return mux
}

func (s *Server) putInstance(w http.ResponseWriter, r *http.Request) {
	var spec InstanceSpec
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	inst, created, err := s.reg.Put(r.PathValue("service"), r.PathValue("id"), spec)
	if err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, inst)
}

func (s *Server) heartbeat(w http.ResponseWriter, r *http.Request) {
	inst, err := s.reg.Heartbeat(r.PathValue("service"), r.PathValue("id"))
	if err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, inst)
}

func (s *Server) deleteInstance(w http.ResponseWriter, r *http.Request) {
	if err := s.reg.Delete(r.PathValue("service"), r.PathValue("id")); err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// SnapshotView is GET /v1/snapshot.
type SnapshotView struct {
	Version string    `json:"version"`
	Updated time.Time `json:"updated"`
	Source  string    `json:"source"`
	Files   []string  `json:"files,omitempty"`
	Nodes   int       `json:"nodes"`
	// Resources are per type (listeners, clusters, routes, endpoints,
	// secrets): the type's version and resource names.
	Resources map[string]TypeView `json:"resources"`
	// RegistryServices are the load assignments the registry provides.
	RegistryServices []string `json:"registry_services"`
	// LastError is set while the resource directory holds a change that was
	// rejected; the snapshot above is the last good one.
	LastError *loadError `json:"last_error,omitempty"`
}

// TypeView is one type in SnapshotView.
type TypeView struct {
	TypeURL string   `json:"type_url"`
	Version string   `json:"version"`
	Names   []string `json:"names"`
}

func (s *Server) snapshot(w http.ResponseWriter, _ *http.Request) {
	cur := s.current.Load()
	v := SnapshotView{
		Version: cur.Version, Updated: cur.Updated, Source: s.source(),
		Nodes: s.tracker.connected(), Resources: map[string]TypeView{},
		RegistryServices: append([]string{}, cur.Contents.Registry...),
		LastError:        s.lastErr.Load(),
	}
	s.buildMu.Lock()
	v.Files = s.set.Files
	s.buildMu.Unlock()
	for _, t := range servedTypes {
		v.Resources[shortNames[t]] = TypeView{TypeURL: t, Version: cur.Snapshot.GetVersion(t), Names: cur.Contents.Names(t)}
	}
	writeJSON(w, http.StatusOK, v)
}

func statusOf(err error) int {
	if errors.Is(err, ErrNotFound) {
		return http.StatusNotFound
	}
	if _, ok := errors.AsType[*ValidationError](err); ok {
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
