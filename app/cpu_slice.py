"""Ask Linux for a short CPU slice for the service's threads, so that a woken thread runs sooner.

Since Linux 6.12 the fair scheduler (EEVDF) lets a task ask, without privilege, for the length of
the slice it runs before another task may take the core (`sched_attr.sched_runtime` of
`sched_setattr(2)` with SCHED_OTHER, 0.1 to 100 ms). A task with a shorter slice has an earlier
deadline: when it wakes it is picked sooner, and it may take the core from a task with a longer
one. Its share of the CPU stays the same. Threads and child processes inherit it.

On a machine whose cores are busy (the broker, InfluxDB and the service sharing two cores), the
wait for a core is most of an alert's time at 10,000 readings a second: the event loop, the commit
thread and the notification sender each wait in the run queue after each hand-off. A slice shorter
than the kernel's (0.75 ms × (1 + log2 cores), e.g. 1.4 ms on two) shortens those waits.

Older kernels accept the call and keep their own slice. Where the call is missing or refused, the
service runs on as before and says why once in its log.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import platform
import struct
import sys
import threading

log = logging.getLogger("cbrain")

# sched_setattr's number on the machines the service is built for (asm-generic's for the newer ones).
_SYSCALL = {"x86_64": 314, "aarch64": 274, "riscv64": 274, "armv7l": 380, "armv8l": 380, "ppc64le": 355,
            "s390x": 345, "loongarch64": 274}
_ATTR = struct.Struct("=IIQiIQQQII")  # struct sched_attr, SCHED_ATTR_SIZE_VER1: 56 bytes
_FAIR = {0, 3, 5}  # SCHED_OTHER, SCHED_BATCH, SCHED_IDLE: the policies a slice is asked under


def ask_cpu_slice(slice_ms: float) -> str | None:
    """Ask for a slice of slice_ms for every thread of this process now, and so for what they start.

    0 asks for the kernel's own slice again. Each thread keeps its policy and nice value. Returns None
    once asked, otherwise why it was not.
    """
    if not sys.platform.startswith("linux"):
        return f"not on Linux ({sys.platform})"
    number = _SYSCALL.get(platform.machine())
    if number is None:
        return f"sched_setattr's number on {platform.machine()} is not known"
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        tids = sorted(int(t) for t in os.listdir("/proc/self/task"))
    except (OSError, AttributeError) as e:  # (no libc, no /proc)
        return f"sched_setattr: {e}"
    for tid in tids:
        try:
            policy = os.sched_getscheduler(tid)
            nice = os.getpriority(os.PRIO_PROCESS, tid)  # the call sets it too: keep the thread's own
        except ProcessLookupError:  # a thread that ended meanwhile
            continue
        if policy not in _FAIR:
            return f"thread {tid} runs under real-time policy {policy}"
        attr = ctypes.create_string_buffer(
            _ATTR.pack(_ATTR.size, policy, 0, nice, 0, round(slice_ms * 1e6), 0, 0, 0, 0), _ATTR.size)
        if libc.syscall(number, tid, attr, 0) != 0 and ctypes.get_errno() != errno.ESRCH:
            return f"sched_setattr: {os.strerror(ctypes.get_errno())}"
    return None


def cpu_slice_ms(tid: int | None = None, pid: int | str = "self") -> float | None:
    """The slice the kernel gives thread tid of process pid (None: the calling thread) in ms, from /proc;
    None where the kernel does not say (before 6.6)."""
    try:
        with open(f"/proc/{pid}/task/{tid or threading.get_native_id()}/sched") as f:
            for line in f:
                if line.startswith("se.slice"):
                    return int(line.split(":")[1]) / 1e6
    except (OSError, ValueError):
        return None
    return None


def use_cpu_slice(slice_ms: float) -> None:
    """Ask for slice_ms (0: leave the kernel's own) and log what the service's threads now get."""
    if slice_ms <= 0:
        return
    kernels = cpu_slice_ms()
    why = ask_cpu_slice(slice_ms)
    now = cpu_slice_ms()
    if why is not None:
        log.warning("the CPU slice of %g ms was not asked for (%s): alerts may wait longer for a busy core",
                    slice_ms, why)
    elif now is not None and abs(now - slice_ms) < 1e-6:
        log.info("CPU slice %g ms (the kernel's own: %s ms)", now, "?" if kernels is None else f"{kernels:g}")
    else:  # (a kernel before 6.12 takes the call and keeps its own)
        log.info("CPU slice: this kernel keeps its own%s", f" ({now:g} ms)" if now is not None else "")
