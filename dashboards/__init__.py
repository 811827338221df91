"""Grafana dashboards as code: every dashboard of dashboards/*.json, generated with grafana-foundation-sdk."""
