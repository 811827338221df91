"""Simulated devices that speak only the contract (docs/devices.md)."""
