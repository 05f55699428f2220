"""One module per exported graph, each with a frozen `GraphSpec` and a builder."""
