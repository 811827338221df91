"""吹哨报到: whistles that summon departments, their work orders, timers, ratings (docs/response.md)."""
