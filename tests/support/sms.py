"""Fixtures: a local Twilio-compatible SMS endpoint."""
