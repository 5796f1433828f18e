"""Shared pytest fixtures for every test folder (see tests/support/)."""

pytest_plugins = ["tests.support.registry"]
