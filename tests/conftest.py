"""Fixtures shared by the whole suite live in tests/support/, one module per concern."""

pytest_plugins = [
    "tests.support.broker",
    "tests.support.sms",
    "tests.support.app",
]
