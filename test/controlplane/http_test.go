package controlplane_test

import (
	"net/http"
	"time"
)

var httpClient = &http.Client{Timeout: 5 * time.Second}

func httpNewRequest(method, url string) (*http.Request, error) {
	return http.NewRequest(method, url, nil)
}
