"""trustload: a start-up gate that loads a model only when it is authentic, intact,
permitted and compliant with the policy in force.

The public Python API is re-exported lazily so that ``import trustload`` stays cheap
(the CLI's start-up time is part of every verification it does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from trustload.decision import CheckResult, Decision, ReasonCode
    from trustload.engine import verify_files

__all__ = ["CheckResult", "Decision", "ReasonCode", "__version__", "verify_files"]


def __getattr__(name: str) -> Any:
    if name in ("CheckResult", "Decision", "ReasonCode"):
        from trustload import decision

        return getattr(decision, name)
    if name == "verify_files":
        from trustload.engine import verify_files

        return verify_files
    raise AttributeError(name)
