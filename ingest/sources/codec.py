"""A vendor's JavaScript payload codec, run in an embedded engine with a time and a memory limit.

A LoRaWAN device's bytes reach the service through ChirpStack v4; where the network server has no
codec for the device, its profile may name the vendor's own codec file. Both styles are taken:
ChirpStack v4's `function decodeUplink(input)` with `input = {bytes: [...], fPort: n,
variables: {...}}`, returning `{data: {...}}` (or `{errors: [...]}`), and ChirpStack v3's
`function Decode(fPort, bytes, variables)` returning the object. Where a file has both,
decodeUplink is called, as ChirpStack v4 would. A codec that throws, returns errors or no object,
loops or grows without bound is a rejection with its reason (CodecError.reason), never a stall.

Engine: QuickJS, through the `quickjs` binding; the engine ChirpStack v4 itself runs codecs in
(rquickjs, chirpstack/src/codec/js/mod.rs), so a codec behaves here as it does there. Measured
against mini-racer (V8) by `.venv/bin/python bench/codec_engines.py --codec <GS524N codec file>`,
two runs (2 cores, Python 3.11, quickjs 1.19.4, mini-racer 0.14.1, Milesight's GS524N codec on its
README sample 221E64001C40, limits 100 ms and 32 MB):

| | quickjs | mini-racer |
|---|---|---|
| construct + load the codec | 1.2-1.3 ms | 15-18 ms |
| one decode (orjson → JS → JSON.stringify → orjson) | 18-21 µs | 500-640 µs |
| `while(true){}` | stopped at 100-108 ms; decodes next | stopped at 101 ms; decodes next |
| `a.push(new Array(1e6))` loop, 5 s limit | out of memory at 90-135 ms; decodes next | at 29-31 ms; decodes next |
| the same under the 100 ms limit | out of memory or time, whichever first (105-117 ms) | at 31 ms |
| RSS growth over 100,000 decodes | 0.0 MB (39-47 MB in all) | 3.4-4.2 MB (86 MB in all) |
| used from a thread other than the maker's | 1,000 decodes and a 1,000-deep recursion work | work |

QuickJS is 25-35 times cheaper a decode and needs no thread of its own (every mini-racer context
runs an asyncio loop in a thread of its own, every call hops there and back, and one made inside a
running loop cannot take a time limit on a synchronous call). Its costs, and what is done here:

- The binding's authors warn that one runtime used from several threads can crash (quickjs/
  __init__.py, class Function). The bench saw none, but each thread gets its own context here,
  made on its first call (1.2 ms); the one made at construction serves the constructing thread.
- Its time limit counts the process's CPU time (clock()), not wall time: on an idle machine the
  same thing, sooner in wall time while other threads of the process are busy, later while the
  machine gives the process no CPU.
- Memory exhaustion is an exception whose text is "InternalError: out of memory", or `null` when
  QuickJS could not allocate even that; so a codec that itself throws null reads as codec_memory.
- Its default stack (256 KiB) stopped a recursion short of 1,000 deep; it is set to 1 MiB.
After a timeout, memory error or throw the thread's context is dropped and made anew for the next
message (ChirpStack v4 runs every decode in a fresh runtime: no state of a failed run stays).
Between successful decodes the context is kept (a fresh one costs 1.2 ms, a decode 20 µs), so
unlike in ChirpStack a codec's top-level variables keep what one decode left in them.

The result is JSON-plain Python (dict, list, str, int/float, bool, None): JSON.stringify inside the
engine, orjson outside. So NaN and ±Infinity become None, a key whose value is undefined is dropped
(undefined in an array becomes None), a Date becomes its ISO string; a cycle or a BigInt is a
codec_error, as is a string with a lone surrogate.

Not given to the codec (ChirpStack v4 gives them): `input.recvTime` and the global `Buffer`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
import quickjs

# Every reason a codec can fail for; a bounded set, so it can label a metric.
REASONS = ("codec_error", "codec_timeout", "codec_memory", "codec_load")
STACK_BYTES = 1024 * 1024
_MESSAGE_CHARS = 300
# QuickJS's words for its own aborts (the first line of the exception's text).
_TIMEOUT = "InternalError: interrupted"
_OUT_OF_MEMORY = frozenset({"InternalError: out of memory", "null"})

# Run after the codec: picks the function ChirpStack would call and returns JSON text, one of
# {"data": {...}}, {"errors": ["..."]} or {"none": "what came back instead of an object"}.
_RUNNER = """
var __cbrain_decode = (function (uplink, v3, stringify, parse) {
  function kind(v) { return v === null ? "null" : Array.isArray(v) ? "an array" : typeof v; }
  function isObject(v) { return v !== null && typeof v === "object" && !Array.isArray(v); }
  return function (text) {
    var input = parse(text), out;
    if (uplink) {
      out = uplink(input);
      if (!isObject(out)) return stringify({none: "decodeUplink returned " + kind(out)});
      var errors = out.errors;
      if ((Array.isArray(errors) && errors.length) || (typeof errors === "string" && errors)) {
        return stringify({errors: [].concat(errors).map(String)});
      }
      out = out.data;
      if (!isObject(out)) return stringify({none: "decodeUplink returned data that is " + kind(out)});
    } else {
      out = v3(input.fPort, input.bytes, input.variables);
      if (!isObject(out)) return stringify({none: "Decode returned " + kind(out)});
    }
    return stringify({data: out});
  };
})(typeof decodeUplink === "function" ? decodeUplink : null, typeof Decode === "function" ? Decode : null,
   JSON.stringify, JSON.parse);
"""
_HAS_FUNCTION = 'typeof decodeUplink === "function" || typeof Decode === "function"'


class CodecError(Exception):
    """A codec's failure: reason is one of REASONS, the text one line naming the codec."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _one_line(text: str) -> str:
    line = " ".join(text.split())
    return line if len(line) <= _MESSAGE_CHARS else line[:_MESSAGE_CHARS] + "…"


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return _one_line(lines[0]) if lines else ""


class JsCodec:
    """One codec file, compiled; decode_uplink runs it on one message."""

    def __init__(self, source: str, *, name: str, time_limit_ms: float = 100, memory_limit_mb: int = 32) -> None:
        self.name = name
        self.source = source
        self.time_limit_ms = time_limit_ms
        self.memory_limit_mb = memory_limit_mb
        self._local = threading.local()
        self._local.run = self._load()

    @classmethod
    def from_file(cls, path: str | Path, **limits: Any) -> JsCodec:
        """The codec in path, named by the file's stem (milesight-gs524n.js: milesight-gs524n)."""
        path = Path(path)
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise CodecError("codec_load", f"codec {path.stem} cannot be read: {e}") from None
        return cls(source, name=path.stem, **limits)

    def decode_uplink(self, data: bytes, fport: int, variables: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The decoded object of one uplink (decodeUplink's `data`, or what Decode returns)."""
        run = getattr(self._local, "run", None)
        if run is None:
            run = self._local.run = self._load()
        arg = orjson.dumps({"bytes": list(data), "fPort": fport, "variables": dict(variables or {})})
        try:
            text = run(arg.decode())
        except quickjs.JSException as e:
            self._local.run = None  # the next message gets a fresh context
            reason, what = self._failure(e)
            what = f"threw: {what}" if reason == "codec_error" else what
            raise CodecError(reason, f"codec {self.name} {what}") from None
        except UnicodeError:
            raise self._error("returned a string that is not valid Unicode") from None
        try:
            envelope = orjson.loads(text) if isinstance(text, str) else None
        except orjson.JSONDecodeError:
            raise self._error("returned a string that is not valid Unicode") from None
        if not isinstance(envelope, dict):
            raise self._error("returned nothing the runner could read")
        if "errors" in envelope:
            raise self._error(_one_line(f"returned errors: {'; '.join(envelope['errors'])}"))
        if "none" in envelope:
            raise self._error(f"returned no object ({envelope['none']})")
        decoded: dict[str, Any] = envelope["data"]
        return decoded

    def _load(self) -> Callable[[str], Any]:
        """A fresh context with the limits set and the codec loaded; its runner function."""
        ctx = quickjs.Context()
        ctx.set_time_limit(self.time_limit_ms / 1000)
        ctx.set_memory_limit(self.memory_limit_mb * 1024 * 1024)
        ctx.set_max_stack_size(STACK_BYTES)
        try:
            ctx.eval(self.source)
            has_function = ctx.eval(_HAS_FUNCTION)
            ctx.eval(_RUNNER)
        except quickjs.JSException as e:
            raise CodecError("codec_load", f"codec {self.name} does not load: {self._failure(e)[1]}") from None
        if not has_function:
            raise CodecError("codec_load", f"codec {self.name} defines neither decodeUplink nor Decode")
        run: Callable[[str], Any] = ctx.get("__cbrain_decode")
        return run

    def _failure(self, error: quickjs.JSException) -> tuple[str, str]:
        """(reason, what happened) of an exception out of the engine."""
        line = _first_line(error)
        if line == _TIMEOUT:
            return "codec_timeout", f"ran past {self.time_limit_ms:g} ms"
        if line in _OUT_OF_MEMORY:
            return "codec_memory", f"used more than {self.memory_limit_mb} MB"
        return "codec_error", line

    def _error(self, what: str) -> CodecError:
        return CodecError("codec_error", f"codec {self.name} {what}")
