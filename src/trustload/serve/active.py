"""What the HTTP layer serves: one verified, loaded, warmed-up model version.

An :class:`ActiveModel` is immutable. The runtime publishes a new one by replacing a
single reference (an atomic swap under the GIL); requests already running keep the
object they started with, so a swap never mixes two versions inside one request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from trustload.facts import VersionRecord
from trustload.serve.loader import LoadedModel

if TYPE_CHECKING:
    from trustload.gate import Held


@dataclass(frozen=True)
class ActiveModel:
    record: VersionRecord
    model: LoadedModel
    decision: dict[str, Any]
    loaded_at: datetime
    held: Held | None = None  # the admitting decision's evidence, for re-decisions

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def version(self) -> str:
        return self.record.version

    @property
    def artifact_digest(self) -> str:
        return self.record.artifact_digest
