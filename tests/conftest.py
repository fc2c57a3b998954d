"""Fixtures shared by the whole suite live in tests/support/, one module per concern."""

import pytest
import structlog

pytest_plugins = [
    "tests.support.broker",
    "tests.support.sms",
    "tests.support.postgres",  # before app, which imports it
    "tests.support.app",
    "tests.support.browser",
]


@pytest.fixture(autouse=True)
def _default_logging() -> None:
    """A test that runs the CLI configures structlog; do not let that leak into others."""
    structlog.reset_defaults()
