"""Simulator models of device types, one module each, registering themselves with device_sim.models."""
