"""The event loop the service runs on (app/cli/common.py): uvloop when installed, asyncio's own when
asked for or when uvloop is missing, and one clear line for a choice that cannot be had."""

from __future__ import annotations

import asyncio
import sys
import warnings

import pytest
import uvloop

from app.cli import parser
from app.cli.common import run_loop
from kernel.errors import CBError


async def loop_kind() -> str:
    await asyncio.sleep(0)
    return "uvloop" if isinstance(asyncio.get_running_loop(), uvloop.Loop) else "asyncio"


def test_auto_and_uvloop_run_on_uvloop_and_asyncio_on_asyncio_s_own() -> None:
    assert run_loop(loop_kind()) == "uvloop"
    assert run_loop(loop_kind(), "uvloop") == "uvloop"
    assert run_loop(loop_kind(), "asyncio") == "asyncio"


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now raises ImportError
    assert run_loop(loop_kind(), "auto") == "asyncio"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the coroutine is closed, not left "never awaited"
        with pytest.raises(CBError, match="uvloop is not installed"):
            run_loop(loop_kind(), "uvloop")


def test_an_unknown_loop_is_refused_by_the_command_line_and_by_the_environment_s_default() -> None:
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args(["run", "--config", "site.yaml", "--event-loop", "tokio"])
    assert exit_info.value.code == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(CBError, match="event loop 'tokio': choose one of auto, uvloop, asyncio"):
            run_loop(loop_kind(), "tokio")  # (CB_EVENT_LOOP=tokio: argparse does not check a default)


async def test_the_tests_run_on_the_loop_their_parameter_names(request: pytest.FixtureRequest) -> None:
    # tests/conftest.py runs this module on both loops: each run is on the one its id says
    assert request.node.name.endswith(f"[{await loop_kind()}]")
