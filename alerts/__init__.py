"""Alerts: lifecycle, routing, escalation, the outbox and the channels that deliver notifications."""
