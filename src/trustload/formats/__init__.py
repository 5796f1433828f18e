"""Strict, size-bounded parsers for evidence: JSON, DSSE, in-toto, SLSA, Sigstore bundles."""
