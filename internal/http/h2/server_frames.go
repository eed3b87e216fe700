package h2

import (
	"time"

	"golang.org/x/net/http2"
)

// processFrame handles one inbound frame on the read goroutine. A returned
// error is a connection error (GOAWAY); stream errors are handled here.
func (sc *ServerConn) processFrame(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		return sc.processHeaders(f)
	case *http2.DataFrame:
		return sc.processData(f)
	case *http2.SettingsFrame:
		sc.emptyRun = 0
		return sc.processSettings(f)
	case *http2.PingFrame:
		sc.emptyRun = 0
		if f.IsAck() {
			return nil
		}
		sc.mu.Lock()
		sc.queueControlLocked(http2.FramePing, http2.FlagPingAck, 0, f.Data[:], false)
		sc.mu.Unlock()
		return nil
	case *http2.WindowUpdateFrame:
		sc.emptyRun = 0
		return sc.processWindowUpdate(f)
	case *http2.RSTStreamFrame:
		sc.emptyRun = 0
		return sc.processRST(f)
	case *http2.PriorityFrame:
		sc.emptyRun = 0
		sc.priorityRx++
		if sc.priorityRx > uint64(sc.cfg.MaxInboundPriorityFramesPerStream)*(1+sc.opened) {
			sc.st.InboundPriorityFramesFlood.Inc()
			return sc.flood()
		}
		if f.StreamDep == f.StreamID {
			sc.resetStream(f.StreamID, http2.ErrCodeProtocol)
		}
		return nil
	case *http2.GoAwayFrame:
		sc.mu.Lock()
		sc.peerGone = true
		sc.maybeFinishLocked()
		sc.mu.Unlock()
		return nil
	case *http2.PushPromiseFrame:
		// Clients cannot push (RFC 9113 8.4).
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	// Unknown frame types are ignored (RFC 9113 4.1).
	return nil
}

func (sc *ServerConn) processSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	if err := f.ForeachSetting(func(s http2.Setting) error { return s.Valid() }); err != nil {
		return err
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	err := f.ForeachSetting(func(s http2.Setting) error {
		switch s.ID {
		case http2.SettingHeaderTableSize:
			sc.henc.SetMaxDynamicTableSize(min(s.Val, hpackTableSize))
		case http2.SettingMaxFrameSize:
			sc.peerMaxFrame = s.Val
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - int64(sc.peerWindow)
			sc.peerWindow = int32(s.Val)
			for _, st := range sc.streams {
				w := int64(st.sendWindow) + delta
				if w > maxWindow {
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
				st.sendWindow = int32(w)
			}
			sc.wcond.Broadcast()
		}
		return nil
	})
	if err != nil {
		return err
	}
	sc.queueControlLocked(http2.FrameSettings, http2.FlagSettingsAck, 0, nil, false)
	return nil
}

func (sc *ServerConn) processWindowUpdate(f *http2.WindowUpdateFrame) error {
	sc.windowRx++
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.windowRx > 5+2*(sc.opened+uint64(sc.cfg.MaxInboundWindowUpdateFramesPerDataFrameSent)*sc.dataSent) {
		sc.st.InboundWindowUpdateFramesFlood.Inc()
		sc.sendGoAwayLocked(http2.ErrCodeEnhanceYourCalm)
		sc.closeAfterFlushLocked()
		return errConnDone
	}
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		if int64(sc.sendWindow)+inc > maxWindow {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		sc.sendWindow += int32(inc)
		sc.wcond.Broadcast()
		return nil
	}
	if f.StreamID > sc.maxClientID {
		return http2.ConnectionError(http2.ErrCodeProtocol) // idle stream
	}
	st := sc.streams[f.StreamID]
	if st == nil {
		return nil // closed: ignored (RFC 9113 6.9)
	}
	if int64(st.sendWindow)+inc > maxWindow {
		sc.resetLocked(st, http2.ErrCodeFlowControl)
		return nil
	}
	st.sendWindow += int32(inc)
	sc.wcond.Broadcast()
	return nil
}

func (sc *ServerConn) processRST(f *http2.RSTStreamFrame) error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if f.StreamID > sc.maxClientID || f.StreamID%2 == 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol) // idle stream
	}
	st := sc.streams[f.StreamID]
	if st == nil {
		return nil
	}
	sc.st.RxReset.Inc()
	if time.Since(st.start) < sc.cfg.PrematureResetMinStreamLifetime {
		sc.premature++
	}
	st.closeLocked(errStreamReset)
	sc.removeLocked(st, true)
	if sc.closedStreams >= sc.cfg.PrematureResetTotalStreamCount && sc.premature*2 > sc.closedStreams {
		// Rapid reset (CVE-2023-44487): most streams are cancelled as
		// soon as they are opened.
		if sc.cfg.OnPrematureResets != nil {
			sc.cfg.OnPrematureResets()
		}
		sc.sendGoAwayLocked(http2.ErrCodeEnhanceYourCalm)
		sc.closeAfterFlushLocked()
		return errConnDone
	}
	return nil
}

// processData applies flow control and hands the payload to the stream.
func (sc *ServerConn) processData(f *http2.DataFrame) error {
	id := f.StreamID
	data := f.Data()
	flen := int32(f.Header().Length)
	if len(data) == 0 && !f.StreamEnded() {
		sc.emptyRun++
		if sc.emptyRun > sc.cfg.MaxConsecutiveEmptyFrames {
			sc.st.InboundEmptyFramesFlood.Inc()
			return sc.flood()
		}
	} else {
		sc.emptyRun = 0
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if id > sc.maxClientID || id%2 == 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol) // idle stream
	}
	if flen > sc.recvWindow {
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	sc.recvWindow -= flen
	st := sc.streams[id]
	if st == nil || st.remoteClosed {
		sc.creditConnLocked(flen)
		if st == nil {
			sc.queueRSTLocked(id, http2.ErrCodeStreamClosed)
		} else {
			sc.resetLocked(st, http2.ErrCodeStreamClosed)
		}
		return nil
	}
	if flen > st.recvWindow {
		sc.creditConnLocked(flen)
		sc.resetLocked(st, http2.ErrCodeFlowControl)
		return nil
	}
	st.recvWindow -= flen
	// Padding is consumed on arrival.
	if pad := flen - int32(len(data)); pad > 0 {
		sc.creditConnLocked(pad)
		st.creditLocked(pad)
	}
	st.received += int64(len(data))
	if st.declared >= 0 && (st.received > st.declared || (f.StreamEnded() && st.received != st.declared)) {
		// content-length disagrees with the body (RFC 9113 8.1.1).
		sc.st.RxMessagingError.Inc()
		sc.creditConnLocked(int32(len(data)))
		sc.resetLocked(st, http2.ErrCodeProtocol)
		return sc.messagingConnErrorLocked()
	}
	if len(data) > 0 {
		if st.handlerDone {
			// Nobody will read it.
			sc.creditConnLocked(int32(len(data)))
			st.creditLocked(int32(len(data)))
		} else {
			st.body = append(st.body, data...)
		}
	}
	if f.StreamEnded() {
		st.remoteClosed = true
		st.bodyEOF = true
		sc.maybeRemoveLocked(st)
	}
	st.cond.Broadcast()
	return nil
}

// creditConnLocked returns consumed bytes to the connection window,
// batching WINDOW_UPDATEs to one per half window.
func (sc *ServerConn) creditConnLocked(n int32) {
	if n <= 0 {
		return
	}
	sc.recvUnacked += n
	if sc.recvUnacked >= int32(sc.cfg.InitialConnWindow/2) {
		sc.recvWindow += sc.recvUnacked
		sc.queueWindowUpdateLocked(0, uint32(sc.recvUnacked))
		sc.recvUnacked = 0
	}
}

// resetStream resets stream id from the read goroutine.
func (sc *ServerConn) resetStream(id uint32, code http2.ErrCode) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if st := sc.streams[id]; st != nil {
		sc.resetLocked(st, code)
		return
	}
	for _, st := range sc.pending {
		if st.id == id {
			sc.resetLocked(st, code)
			return
		}
	}
	sc.queueRSTLocked(id, code)
}

// resetLocked sends RST_STREAM and ends the stream.
func (sc *ServerConn) resetLocked(st *stream, code http2.ErrCode) {
	if !st.reset {
		sc.queueRSTLocked(st.id, code)
	}
	st.closeLocked(errStreamReset)
	sc.removeLocked(st, false)
}

// messagingConnErrorLocked is the connection error a malformed request
// causes unless stream_error_on_invalid_http_messaging keeps it to the
// stream.
func (sc *ServerConn) messagingConnErrorLocked() error {
	if sc.cfg.StreamErrorOnInvalidMessaging {
		return nil
	}
	return http2.ConnectionError(http2.ErrCodeProtocol)
}
