package sni_cluster

// The SNI cluster filter has no stats of its own, as in Envoy: a missing
// cluster shows in the TCP proxy's downstream_cx_no_route.
