"""Composition root: the `cbrain` CLI, configuration loading, the HTTP API, and the wiring."""
