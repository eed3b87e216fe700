package bootstrap

// Dynamic configuration (internal/xds): dynamic_resources in the bootstrap,
// the config sources resources name, and the references from one resource
// to another (HCM rds, EDS clusters, SDS secrets). Resources received over
// xDS are held to the same table (CheckXDSResource), so the Secret and the
// EDS fields of ClusterLoadAssignment live here too.

const typeSecret = "envoy.extensions.transport_sockets.tls.v3.Secret"

func init() {
	extendFields("envoy.config.bootstrap.v3.Bootstrap", "dynamic_resources")
	extendFields("envoy.config.core.v3.Node",
		field{Name: "locality", Note: "sent to management servers"},
		field{Name: "user_agent_name", Note: "replaced by `legate`, as Envoy replaces it with `envoy`"},
		field{Name: "user_agent_version", Note: "replaced by Legate's build version"},
		field{Name: "user_agent_build_version", Note: "replaced by Legate's build version"},
		field{Name: "client_features", Note: "replaced by the features Legate implements"})
	extendFields(typeHCM, field{Name: "rds", Note: "the listener warms until the route configuration arrives, or until initial_fetch_timeout passes"})
	extendEnum("envoy.config.cluster.v3.Cluster", "type", "EDS")
	extendFields("envoy.config.cluster.v3.Cluster",
		field{Name: "eds_cluster_config", Note: "the cluster warms until its first load assignment arrives, or until initial_fetch_timeout passes"})
	extendFields("envoy.config.endpoint.v3.LocalityLbEndpoints",
		field{Name: "locality", Note: "shown in the config dump; no locality-aware load balancing, so locality weights and priorities are refused"})
	extendFields("envoy.config.endpoint.v3.LbEndpoint",
		field{Name: "health_status", Enum: []string{"UNKNOWN", "HEALTHY", "UNHEALTHY", "DRAINING", "TIMEOUT"},
			Note: "UNHEALTHY, DRAINING and TIMEOUT take the host out of load balancing"},
		field{Name: "metadata", Note: "accepted and shown; no subset load balancing reads it"})
	extendFields("envoy.extensions.transport_sockets.tls.v3.CommonTlsContext",
		field{Name: "tls_certificate_sds_secret_configs", Note: "a server may name several (chosen per client hello), a client one; the listener or cluster warms until they arrive"},
		field{Name: "validation_context_sds_secret_config", Note: "the listener or cluster warms until it arrives"},
		field{Name: "combined_validation_context", Note: "the SDS validation context is merged over the default one, as in Envoy"})

	addMessages("Dynamic configuration (xDS)",
		"Listeners and clusters from `dynamic_resources`, routes (RDS), endpoints (EDS) and TLS secrets (SDS) "+
			"from a management server over gRPC — aggregated (ADS) or one stream per type, state of the world or "+
			"incremental (delta) — or from watched files. Every resource received is checked against these tables "+
			"and the proto validation rules; a resource that fails is refused (NACKed, with the resource name and "+
			"field path in `error_detail`) and the last good version keeps serving. Only the v3 transport and "+
			"resource versions exist.",
		message{"envoy.config.bootstrap.v3.Bootstrap.DynamicResources", fs(
			field{Name: "lds_config", Note: "wildcard: every listener the source has"},
			field{Name: "cds_config", Note: "wildcard: every cluster the source has"},
			field{Name: "ads_config", Note: "api_type GRPC or AGGREGATED_GRPC: state of the world; DELTA_GRPC or AGGREGATED_DELTA_GRPC: incremental"})},
		message{"envoy.config.core.v3.ConfigSource", fs(
			field{Name: "ads", Note: "the stream of `dynamic_resources.ads_config`"},
			"api_config_source",
			field{Name: "path_config_source", Note: "a YAML or JSON `DiscoveryResponse`; re-read when it changes"},
			field{Name: "path", Note: "deprecated in Envoy; accepted, as path_config_source.path"},
			field{Name: "initial_fetch_timeout", Note: "default 15 s; 0 waits forever"},
			field{Name: "resource_api_version", Enum: []string{"V3"}})},
		message{"envoy.config.core.v3.AggregatedConfigSource", nil},
		message{"envoy.config.core.v3.PathConfigSource", fs("path",
			field{Name: "watched_directory", Note: "a move into the directory triggers the re-read: a symlink swap, as with Kubernetes ConfigMaps"})},
		message{"envoy.config.core.v3.WatchedDirectory", fs("path")},
		message{"envoy.config.core.v3.ApiConfigSource", fs(
			field{Name: "api_type", Enum: []string{"GRPC", "DELTA_GRPC", "AGGREGATED_GRPC", "AGGREGATED_DELTA_GRPC"}},
			field{Name: "transport_api_version", Enum: []string{"V3"}},
			field{Name: "grpc_services", Note: "exactly one; an `envoy_grpc` cluster must be a static cluster"},
			field{Name: "set_node_on_first_message_only", Note: "true: the node goes only on the first request of each stream"})},
		message{"envoy.config.core.v3.Locality", fs("region", "zone", "sub_zone")},
		message{"envoy.config.core.v3.BuildVersion", fs("version", "metadata")},
		message{"envoy.type.v3.SemanticVersion", fs("major_number", "minor_number", "patch")},
		message{"envoy.config.core.v3.Metadata", fs("filter_metadata")},
		message{"envoy.extensions.filters.network.http_connection_manager.v3.Rds", fs("config_source", "route_config_name")},
		message{"envoy.config.cluster.v3.Cluster.EdsClusterConfig", fs(
			field{Name: "eds_config", Note: "required, as in Envoy"},
			field{Name: "service_name", Note: "the load assignment asked for; default the cluster name"})},
		message{"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.CombinedCertificateValidationContext",
			fs("default_validation_context", "validation_context_sds_secret_config")},
		message{"envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig", fs("name",
			field{Name: "sds_config", Note: "unset: the name is one of `static_resources.secrets`"})},
		message{typeSecret, fs("name", "tls_certificate", "validation_context")},
	)
}
