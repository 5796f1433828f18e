"""Model sources: where the gate fetches the bytes a Registry record pins.

The trustload Registry governs (stage, aliases, revocation, quarantine, cards, policy
digests); a *source* delivers the bytes. The split follows python-tuf's fetcher /
updater: the gate resolves governance, hands the record to the source the record
names, and gets back facts (:class:`~trustload.sources.base.Fetched`: the verified
cache layout and the signature and attestation evidence). The engine and the checks
see only those facts, never where they came from.

* :class:`~trustload.sources.registry.RegistrySource`: the Registry's own blob store.
* :class:`~trustload.sources.oci.OciSource`: an OCI registry
  (``artifact_uri = "oci://HOST/REPO@sha256:<manifest>"``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trustload.client.api import RegistryClient
    from trustload.config import OciConfig
    from trustload.facts import VersionRecord
    from trustload.sources.base import ModelSource


def source_for(record: VersionRecord, client: RegistryClient, oci: OciConfig | None) -> ModelSource:
    """The source a record names: an OCI registry for ``oci://`` artifacts, else the
    Registry that answered (today's path)."""
    if record.artifact_uri is not None:
        from trustload.config import OciConfig
        from trustload.sources.oci import OciSource

        return OciSource(record.artifact_uri, oci if oci is not None else OciConfig())
    from trustload.sources.registry import RegistrySource

    return RegistrySource(client)
