"""The CPU slice the service asks Linux for: asked for every thread, inherited, policy and nice kept."""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

import app.cpu_slice as cpu_slice
from kernel.settings.service import IngestSettings

REPO = Path(__file__).resolve().parents[2]


def custom_slices() -> bool:
    """Whether this kernel takes a thread's own slice (Linux 6.12 and later) and shows it in /proc."""
    try:
        major, minor = (int(x) for x in platform.release().split(".")[:2])
    except ValueError:
        return False
    return sys.platform.startswith("linux") and (major, minor) >= (6, 12) and cpu_slice.cpu_slice_ms() is not None


needs_custom_slices = pytest.mark.skipif(not custom_slices(), reason="the kernel has no slice of a thread's own")


def run(code: str) -> str:
    """Run code in a fresh interpreter (the ask is for every thread of the process that asks)."""
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_setting_takes_0_or_what_linux_takes() -> None:
    assert IngestSettings().cpu_slice_ms == 0.3
    assert IngestSettings(cpu_slice_ms=0).cpu_slice_ms == 0
    assert IngestSettings(cpu_slice_ms=100).cpu_slice_ms == 100
    for bad, says in ((0.05, "0 (the kernel's own slice) or 0.1 to 100 ms"), (101, "less than or equal to 100"),
                      (-1, "greater than or equal to 0")):
        with pytest.raises(ValidationError, match=r"cpu_slice_ms[\s\S]*" + re.escape(says)):
            IngestSettings(cpu_slice_ms=bad)


@needs_custom_slices
def test_every_thread_and_what_it_starts_gets_the_slice_and_0_gives_the_kernels_back() -> None:
    out = run("""
import json, os, threading
from app.cpu_slice import ask_cpu_slice, cpu_slice_ms
kernels = cpu_slice_ms()
seen = {}
started = threading.Event(); go_on = threading.Event()
def before():  # a thread running before the ask
    started.set(); go_on.wait(10); seen["before"] = cpu_slice_ms()
t = threading.Thread(target=before); t.start(); started.wait(10)
assert ask_cpu_slice(0.3) is None
go_on.set(); t.join()
seen["main"] = cpu_slice_ms()
later = threading.Thread(target=lambda: seen.__setitem__("later", cpu_slice_ms())); later.start(); later.join()
r, w = os.pipe()
if os.fork() == 0:
    os.write(w, repr(cpu_slice_ms()).encode()); os._exit(0)
os.close(w); seen["child"] = float(os.read(r, 100)); os.wait()
assert ask_cpu_slice(0) is None
print(json.dumps({"kernels": kernels, "seen": seen, "back": cpu_slice_ms()}))
""")
    got = json.loads(out)
    assert got["seen"] == {"before": 0.3, "main": 0.3, "later": 0.3, "child": 0.3}
    assert got["back"] == got["kernels"] != 0.3


@needs_custom_slices
def test_a_threads_nice_and_policy_are_kept() -> None:
    out = run("""
import os
from app.cpu_slice import ask_cpu_slice, cpu_slice_ms
os.setpriority(os.PRIO_PROCESS, 0, 5)
os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
assert ask_cpu_slice(0.5) is None
print(os.getpriority(os.PRIO_PROCESS, 0), os.sched_getscheduler(0) == os.SCHED_BATCH, cpu_slice_ms())
""")
    assert out == "5 True 0.5"


def test_where_it_cannot_be_asked_the_log_says_why_once(monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(cpu_slice.platform, "machine", lambda: "vax")
    with caplog.at_level(logging.INFO, logger="cbrain"):
        cpu_slice.use_cpu_slice(0.3)
        cpu_slice.use_cpu_slice(0)  # 0: nothing asked, nothing said
    assert [r.getMessage() for r in caplog.records] == [
        "the CPU slice of 0.3 ms was not asked for (sched_setattr's number on vax is not known): "
        "alerts may wait longer for a busy core"]
    assert caplog.records[0].levelno == logging.WARNING
