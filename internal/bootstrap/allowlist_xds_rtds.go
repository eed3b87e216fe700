package bootstrap

// RTDS (internal/runtime/rtds.go): runtime layers delivered over xDS.

func init() {
	extendFields("envoy.config.bootstrap.v3.RuntimeLayer",
		field{Name: "rtds_layer", Note: "values apply to configuration built after they arrive (Legate reads runtime when building config)"})
	addMessages("Dynamic configuration (xDS)", "",
		message{"envoy.config.bootstrap.v3.RuntimeLayer.RtdsLayer", fs("name", field{Name: "rtds_config", Note: "needs dynamic_resources"})},
		message{"envoy.service.runtime.v3.Runtime", fs("name", field{Name: "layer", Note: "as a static_layer"})},
	)
}
