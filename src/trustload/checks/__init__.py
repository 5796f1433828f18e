"""Built-in checks: small pure functions from facts to :class:`CheckResult`.

Each module serves one requirement and names it in its docstring. No check opens a
file or a socket; the engine (:mod:`trustload.engine`) gathers the facts, runs every
check that still makes sense and lists every failing code.

Check names (the ``name`` field of the decision's ``checks``) are stable:
``stage``, ``revoked``, ``quarantined``, ``digest``, ``policy_digest``,
``revalidation``, ``tenant``, ``purpose``, ``downgrade``, plus ``signature`` and the
attestation checks, and ``policy`` for the Rego verdict.
"""
