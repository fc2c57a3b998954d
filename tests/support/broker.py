"""Fixtures: a real Mosquitto broker per test session, a unique topic root per test."""
