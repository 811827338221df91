"""Simulated devices that speak only the contract (CONTRACT.md section 1)."""
