"""Rules: YAML rule specs, pure per-(rule, device) state machines, and the engine that schedules them."""
