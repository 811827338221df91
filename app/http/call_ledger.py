"""叫应 over HTTP (docs/response.md): an alert's call ledger (JSON, CSV, Excel), and the voice provider's
callback that answers a call by the key the person pressed."""

# No `from __future__ import annotations`: FastAPI resolves the local dependency alias at definition time.
import contextlib
import hmac
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from app.auth import Principal, TokenBook
from app.http.caller import bearer
from app.http.errors import NOT_FOUND
from app.ledger_export import MEDIA_TYPES, export
from app.view import ServiceView
from kernel.errors import Refused

# Aliyun's voice receipts (HTTP push) are answered like this; anything else makes it push again.
VOICE_OK = {"code": 0, "msg": "成功"}


def router(view: ServiceView, tokens: TokenBook) -> APIRouter:
    """The ledger and the voice callback."""
    r = APIRouter(prefix="/api/v1")
    Caller = Annotated[Principal, Depends(bearer(tokens))]
    names = {p.id: p.name for p in view.settings.recipients}
    answer = view.settings.alerts.answer

    @r.get("/alerts/{alert_id}/ledger", summary="叫应 ledger: every call, channel, delivery and answer",
           responses=NOT_FOUND)
    async def ledger(who: Caller, alert_id: str, format: Literal["json", "csv", "xlsx"] = "json",
                     lang: Annotated[Literal["zh-CN", "en"] | None, Query()] = None) -> Response:
        entries = await view.ledger(who.scope, alert_id)
        if entries is None:
            raise HTTPException(404, "no such alert")
        if format == "json":
            return Response(orjson.dumps({"alert_id": alert_id, "entries": entries}), media_type="application/json")
        body, headers = export(alert_id, entries, format, lang or view.settings.locale, names)
        return Response(body, media_type=MEDIA_TYPES[format], headers=headers)

    @r.post("/answer/voice/{secret}", summary="The voice provider's call receipts: a key press answers the call",
            include_in_schema=False)
    async def voice_callback(secret: str, request: Request) -> Response:
        if answer.voice_callback_secret is None or not hmac.compare_digest(
                secret.encode(), answer.voice_callback_secret.encode()):
            raise HTTPException(404, "not found")
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return JSONResponse({"code": 400, "msg": "the body is not JSON"}, status_code=400)
        reports = body if isinstance(body, list) else [body]
        if not all(isinstance(x, dict) for x in reports):
            return JSONResponse({"code": 400, "msg": "a receipt is a JSON object (or a list of them)"},
                                status_code=400)
        for report in reports:
            out_id, keys = report.get("out_id"), str(report.get("dtmf") or "")
            if not isinstance(out_id, str) or answer.voice_answer_key not in keys:
                continue  # a receipt without the answer key: the call goes on to its deadline
            found = await view.call_of_send(out_id)
            if found is None or found[2] != "voice":
                continue
            alert_id, person, _type = found
            # Resolved meanwhile, or this person's call already answered: nothing more to do.
            with contextlib.suppress(Refused):
                await view.acknowledge(alert_id, person, None, via="voice")
        return JSONResponse(VOICE_OK)

    return r
