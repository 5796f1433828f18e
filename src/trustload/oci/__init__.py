"""OCI distribution and cosign: the seam to the registries users already run (issue #9).

``reference`` parses what users pin (``HOST/REPO@sha256:...``, ``oci-layout:DIR@sha256:...``);
``reader`` is the one interface every OCI source implements (a registry over HTTPS, an
``oci-layout`` directory written by ``cosign save``), so the cosign verifier never knows
which one it reads from, the way python-tuf's updater never knows its fetcher.
"""
