package original_dst

// The filter has no stats of its own in Envoy either.
