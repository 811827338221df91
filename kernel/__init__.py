"""Shared vocabulary of the community brain: models, topics, settings, clock, errors. No I/O."""
