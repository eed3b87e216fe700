package bootstrap

// Bootstrap-level settings of configuration loading and operation:
// cluster_manager and the admin's profile path and access logs.

func init() {
	extendFields("envoy.config.bootstrap.v3.Bootstrap", "cluster_manager")
	addMessages("Bootstrap", "",
		message{"envoy.config.bootstrap.v3.ClusterManager", fs(
			field{Name: "local_cluster_name", Note: "must name a cluster of `static_resources.clusters`, as in Envoy; Legate has no zone-aware routing, which is what Envoy uses it for"},
			field{Name: "outlier_detection", Note: "Legate has no outlier detection yet (clusters' `outlier_detection` is refused), so the event log is created and stays empty"})},
		message{"envoy.config.bootstrap.v3.ClusterManager.OutlierDetection", fs("event_log_path")},
	)
	extendFields("envoy.config.bootstrap.v3.Admin",
		field{Name: "profile_path", Note: "where POST /cpuprofiler?enable=n and /heapprofiler?enable=n write Go pprof profiles; default /var/log/envoy/envoy.prof"},
		field{Name: "access_log", Note: "logs every admin request, as HCM access logs do; the same logger types"})
}
