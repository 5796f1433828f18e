"""Fuzz tests reuse the attack arena (one real Registry per module) for API fuzzing."""

from tests.attacks.conftest import arena, gate  # noqa: F401  (fixtures re-exported)
