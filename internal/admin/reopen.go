package admin

import (
	"net/http"
)

// reopenLogs reopens the access log files, as Envoy does on POST
// /reopen_logs and SIGUSR1, so logrotate can rename them and have new ones
// created. Envoy always answers OK (its reopen is asynchronous); Legate
// reopens before answering, so a failure is reported here too (it is also
// counted in filesystem.reopen_failed and retried at every flush).
func (s *server) reopenLogs(w http.ResponseWriter, _ *http.Request) {
	if s.deps.ReopenLogs != nil {
		if err := s.deps.ReopenLogs(); err != nil {
			text(w, http.StatusInternalServerError, "reopen failed: "+err.Error()+"\n")
			return
		}
	}
	text(w, http.StatusOK, "OK\n")
}
