"""The gate's side of the channel to the Registry (R2.1, R5): mTLS, allowlist, tokens.

``transport`` owns the wire (TLS context, allowlist, redirects, retries, error
translation); ``api`` turns Registry answers into typed facts. Both import ``httpx``
lazily so the CLI starts fast.
"""
