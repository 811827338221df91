"""Shared vocabulary of the community brain: models, topics, settings, clock, errors. No I/O.

The device catalog (kernel.devices) is loaded with the package, so every device type is registered
(kernel.ids.DeviceType) before any module of the service names one.
"""

import kernel.devices  # noqa: F401  (its modules register the device types)
