"""Where a provider is called: the catalog, the provider seam and one module per provider."""
