"""Keys, signature verifiers and Sigstore bundle verification (offline only)."""
