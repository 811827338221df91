"""Ingestion: MQTT source, decode and validate, dedup, spool, and the reading stores."""
