package bootstrap

// TLS: peer identity checks (internal/tlscontext/san.go), subject alt name
// matchers on a validation context, inline or in a secret; and static
// secrets (internal/tlscontext/static.go).

const typeCertValidationContext = "envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext"

func init() {
	extendFields("envoy.config.bootstrap.v3.Bootstrap.StaticResources",
		field{Name: "secrets", Note: "referred to by an SdsSecretConfig with a name and no sds_config; checked as SDS secrets are"})
	extendFields(typeCertValidationContext,
		field{Name: "match_typed_subject_alt_names", Note: "DNS, URI (SPIFFE IDs), EMAIL and IP_ADDRESS SANs of the peer's leaf; one match admits it. " +
			"An exact DNS matcher is covered by a wildcard SAN. Needs trusted_ca, as in Envoy; checked downstream and upstream"},
		field{Name: "match_subject_alt_names", Note: "deprecated in Envoy; each matcher is tried against DNS, URI, EMAIL and IP SANs"})
	addMessages("TLS", "",
		message{"envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher", fs(
			field{Name: "san_type", Enum: []string{"DNS", "URI", "EMAIL", "IP_ADDRESS"}},
			"matcher")},
	)
}
