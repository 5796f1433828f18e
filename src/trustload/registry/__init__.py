"""The model Registry (zone Z5): governance records, content-addressed blobs, over mTLS + OIDC.

Modules: ``store`` (SQLAlchemy models and schema migrations), ``blobs`` (filesystem
blob store), ``auth`` (token verification, caller identity), ``app`` (FastAPI routes
implementing docs/registry-api.md), ``server`` (uvicorn over HTTPS with mTLS required).
"""
