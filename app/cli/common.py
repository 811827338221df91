"""What the commands of `cbrain` share: logging, argument types and the event loop they run on."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from kernel.errors import CBError

if TYPE_CHECKING:
    # What each group's add(sub) adds its commands to.
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]

# The --log-level default of the commands that run the service.
LOG_LEVEL = os.environ.get("CB_LOG_LEVEL", "info")

# The event loops the service can run on (--event-loop; CB_EVENT_LOOP sets the default). uvloop is
# libuv's loop, written in C: the loop's own work for each turn (epoll, timers, the readiness of
# sockets, futures' callbacks) costs a fraction of asyncio's pure-Python loop. Under load the ingest
# turns the loop a few hundred times a second (ingest/mqtt_source.py, ingest/pipeline.py), and at
# 10,000 readings/s uvloop took the service's main thread from ~0.40 to ~0.32 cores (bench/README.md,
# "Measured 2026-12-07, evening"). "auto" takes uvloop when it is installed (a dependency, so it is
# unless a platform has no wheel for it), asyncio's loop otherwise.
EVENT_LOOPS = ("auto", "uvloop", "asyncio")
EVENT_LOOP = os.environ.get("CB_EVENT_LOOP", "auto")

T = TypeVar("T")


def add_event_loop(parser: argparse.ArgumentParser) -> None:
    """The --event-loop option of a command that runs the service."""
    parser.add_argument("--event-loop", choices=EVENT_LOOPS, default=EVENT_LOOP,
                        help="the event loop to run on: uvloop when installed (auto, the default), or "
                             "asyncio's own (default from CB_EVENT_LOOP)")


def run_loop(main: Coroutine[Any, Any, T], choice: str = "auto") -> T:
    """Run main to its end on a new event loop of the kind chosen (see EVENT_LOOPS)."""
    if choice not in EVENT_LOOPS:
        main.close()
        raise CBError(f"event loop {choice!r}: choose one of {', '.join(EVENT_LOOPS)}")
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                main.close()
                raise CBError("event loop 'uvloop': uvloop is not installed (pip install uvloop, or "
                              "--event-loop asyncio)") from None
        else:
            return uvloop.run(main)
    return asyncio.run(main)


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    for noisy in ("amqtt", "transitions"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def count(least: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}")
        return value
    return parse


def positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value
