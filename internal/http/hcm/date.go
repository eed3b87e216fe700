package hcm

import (
	"net/http"
	"sync/atomic"
	"time"
)

// dateCache formats the Date header once a second, not once a response.
type dateCache struct {
	v atomic.Pointer[dateValue]
}

type dateValue struct {
	sec int64
	s   string
}

func (d *dateCache) get(now time.Time) string {
	sec := now.Unix()
	if v := d.v.Load(); v != nil && v.sec == sec {
		return v.s
	}
	v := &dateValue{sec: sec, s: now.UTC().Format(http.TimeFormat)}
	d.v.Store(v)
	return v.s
}

var httpDate dateCache
