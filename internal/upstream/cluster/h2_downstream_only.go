package cluster

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// downstreamOnlyH2 refuses http2_protocol_options fields that only the
// downstream HTTP/2 server implements (its flood limits and messaging
// policy), so a cluster does not silently ignore them.
func downstreamOnlyH2(field string, h2 *corev3.Http2ProtocolOptions) error {
	set := map[string]bool{
		"max_outbound_frames":                                  h2.GetMaxOutboundFrames() != nil,
		"max_outbound_control_frames":                          h2.GetMaxOutboundControlFrames() != nil,
		"max_consecutive_inbound_frames_with_empty_payload":    h2.GetMaxConsecutiveInboundFramesWithEmptyPayload() != nil,
		"max_inbound_priority_frames_per_stream":               h2.GetMaxInboundPriorityFramesPerStream() != nil,
		"max_inbound_window_update_frames_per_data_frame_sent": h2.GetMaxInboundWindowUpdateFramesPerDataFrameSent() != nil,
		"stream_error_on_invalid_http_messaging":               deprecatedStreamError(h2),
		"override_stream_error_on_invalid_http_message":        h2.GetOverrideStreamErrorOnInvalidHttpMessage() != nil,
	}
	for _, name := range []string{
		"max_outbound_frames", "max_outbound_control_frames",
		"max_consecutive_inbound_frames_with_empty_payload", "max_inbound_priority_frames_per_stream",
		"max_inbound_window_update_frames_per_data_frame_sent",
		"stream_error_on_invalid_http_messaging", "override_stream_error_on_invalid_http_message",
	} {
		if set[name] {
			return fieldErr(field+"."+name, "is not supported on clusters (downstream only)")
		}
	}
	return nil
}

func deprecatedStreamError(h2 *corev3.Http2ProtocolOptions) bool {
	//lint:ignore SA1019 refused on clusters whatever its deprecation
	return h2.GetStreamErrorOnInvalidHttpMessaging()
}
