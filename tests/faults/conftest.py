"""Faults reuse the attack arena: one real Registry per module, a private gate per test."""

from tests.attacks.conftest import arena, gate  # noqa: F401  (fixtures re-exported)
