"""Sources: devices that report through other systems."""
