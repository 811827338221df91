"""A profile's examples (`cbrain profiles test`): each input message through the profile (and its
codec) must give exactly the reading written beside it, a valid reading of the profile's device type
(section 1 of the contract), or be rejected for the reason written beside it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from ingest.decode import reason_of
from ingest.sources import SourceFormatError
from ingest.sources.codec import CodecError, JsCodec
from ingest.sources.mapping import CompiledProfile
from ingest.sources.reader import SourceDevice, SourceReader
from kernel.devices import CATALOG
from kernel.settings.profiles import Profile, ProfileExample
from kernel.site import Place


@dataclass(frozen=True, slots=True)
class ExampleResult:
    """One example's outcome: what it expected and what the profile gave (or why it failed).
    `skipped` says why it could not run (a vendor codec not in the tree)."""

    profile: str
    name: str
    passed: bool
    expected: dict[str, Any] | str
    got: dict[str, Any] | str
    skipped: str | None = None


def run_examples(profile: Profile) -> list[ExampleResult]:
    """Every example of a profile, in order."""
    codec: JsCodec | None = None
    if profile.codec is not None:
        if not Path(profile.codec).is_file():
            why = f"its codec {profile.codec} is not there (codecs/SOURCES.md says where to get it)"
            return [ExampleResult(profile.id, ex.name or f"example {i + 1}", False, "", "", why)
                    for i, ex in enumerate(profile.examples)]
        codec = JsCodec.from_file(profile.codec)
    compiled = CompiledProfile(profile)
    device = SourceDevice("", profile.device_type, "", Place(""), "", None, compiled, codec, {})
    out: list[ExampleResult] = []
    for i, ex in enumerate(profile.examples):
        expected: dict[str, Any] | str = ex.reading if ex.reading is not None else f"rejected: {ex.rejected}"
        got = _outcome(profile, device, ex)
        passed = (_same(got, expected) if isinstance(got, dict) and isinstance(expected, dict)
                  else isinstance(got, str) and got.startswith(f"{expected} "))
        out.append(ExampleResult(profile.id, ex.name or f"example {i + 1}", passed, expected, got))
    return out


def _outcome(profile: Profile, device: SourceDevice, ex: ProfileExample) -> dict[str, Any] | str:
    """The reading an example's input gives, or "rejected: <reason> (<why>)"."""
    try:
        body = orjson.loads(ex.input) if isinstance(ex.input, str) else ex.input
    except orjson.JSONDecodeError as exc:
        return f"the input is not JSON: {exc}"
    device.variables = dict(ex.vars)
    try:
        got = device.profile.fields(SourceReader.decoded(device, body), None, ex.vars)  # type: ignore[union-attr]
    except (SourceFormatError, CodecError) as exc:
        return f"rejected: {exc.reason} ({exc})"
    try:
        CATALOG[profile.device_type].payload.model_validate(got)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"])
        return f"rejected: {reason_of(err['type'])} ({where + ': ' if where else ''}{err['msg']})"
    return got


def _same(got: dict[str, Any], expected: dict[str, Any]) -> bool:
    """Equal as readings: the same fields, numbers equal whether written as integers or not."""
    if set(got) != set(expected):
        return False
    for k, v in expected.items():
        g = got[k]
        if isinstance(v, bool) or isinstance(g, bool) or not isinstance(v, int | float):
            if g != v or type(g) is not type(v):
                return False
        elif not isinstance(g, int | float) or abs(float(g) - float(v)) > 1e-9 * max(1.0, abs(float(v))):
            return False
    return True
