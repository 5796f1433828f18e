"""Policy as code (R2.7, R4): bundle loading, ``policy_digest`` and Rego evaluation.

* :func:`policy_digest` / :func:`load_bundle` — :mod:`trustload.policy.bundle`
  (the exact, deterministic digest construction is documented there and in
  ``docs/policy.md``).
* :class:`PolicyEngine` / :class:`PolicyVerdict` — :mod:`trustload.policy.rego`
  (regopy, compiled once, fail closed).
* :func:`build_input` — :mod:`trustload.policy.input` (the R4 input document).
* :func:`default_policy_dir` — the shipped default bundle (the user's R4 policy).

Importing this package is cheap: regopy is only imported when a bundle is compiled.
"""

from __future__ import annotations

from pathlib import Path

from trustload.policy.bundle import PolicyBundle, load_bundle, policy_digest
from trustload.policy.input import AttestationView, PolicyInputs, build_input, rego_time
from trustload.policy.rego import PolicyEngine, PolicyVerdict


def default_policy_dir() -> Path:
    """The directory of the shipped default bundle (package ``registry.download``)."""
    return Path(__file__).resolve().parent / "default"


__all__ = [
    "AttestationView",
    "PolicyBundle",
    "PolicyEngine",
    "PolicyInputs",
    "PolicyVerdict",
    "build_input",
    "default_policy_dir",
    "load_bundle",
    "policy_digest",
    "rego_time",
]
