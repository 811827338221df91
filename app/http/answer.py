"""叫应 over HTTP (docs/response.md): an alert's call ledger (JSON, CSV, Excel), and the voice provider's
callback that answers a call by the key the person pressed."""

# No `from __future__ import annotations`: FastAPI resolves the local dependency alias at definition time.
import contextlib
import csv
import hmac
import io
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response

from app.auth import Principal, TokenBook
from app.http.caller import bearer
from app.view import ActionError, ServiceView
from app.web.words import words

# The ledger's columns as exported, with the word of each header.
EXPORT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("place", "col_place"), ("duty", "col_duty"), ("person", "col_person"), ("attempt", "col_attempt"),
    ("called_at", "col_called"), ("due_at", "col_due"), ("channel", "col_channel"), ("sent_at", "col_sent"),
    ("delivery", "col_delivery"), ("delivered_at", "col_delivered"), ("status", "col_status"),
    ("answered_at", "col_answered"), ("answered_via", "col_via"), ("note", "col_note"))
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Aliyun's voice receipts (HTTP push) are answered like this; anything else makes it push again.
VOICE_OK = {"code": 0, "msg": "成功"}


def export_rows(entries: list[dict[str, Any]], lang: str, names: dict[str, str]) -> list[list[str]]:
    """A header and one row per ledger entry, statuses and ways of answering in words."""
    t = words(lang)
    out = [[t[word] for _, word in EXPORT_COLUMNS]]
    for e in entries:
        row = []
        for key, _ in EXPORT_COLUMNS:
            value = e.get(key)
            if key == "status":
                value = t.get(f"call_{value}", value)
            elif key == "answered_via" and value:
                value = t.get(f"via_{value}", value)
            elif key == "delivery" and value:
                value = t.get(f"delivery_{value}", value)
            elif key == "person" and value:
                value = f"{names.get(value, value)} ({value})"
            row.append("" if value is None else str(value))
        out.append(row)
    return out


def as_csv(rows: list[list[str]]) -> bytes:
    """CSV with a BOM, so that Excel opens the Chinese words as UTF-8."""
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    return "\ufeff".encode() + buf.getvalue().encode("utf-8")


def as_xlsx(rows: list[list[str]], title: str) -> bytes:
    """One worksheet with the ledger."""
    from openpyxl import Workbook  # only the export needs it

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title[:31]
    for row in rows:
        sheet.append(row)
    sheet.freeze_panes = "A2"
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def router(view: ServiceView, tokens: TokenBook) -> APIRouter:
    """The ledger and the voice callback."""
    r = APIRouter(prefix="/api/v1")
    Caller = Annotated[Principal, Depends(bearer(tokens))]
    names = {p.id: p.name for p in view.settings.recipients}
    answer = view.settings.alerts.answer

    @r.get("/alerts/{alert_id}/ledger", summary="叫应 ledger: every call, channel, delivery and answer")
    async def ledger(who: Caller, alert_id: str, format: Literal["json", "csv", "xlsx"] = "json",
                     lang: Annotated[Literal["zh-CN", "en"] | None, Query()] = None) -> Response:
        entries = await view.ledger(who.scope, alert_id)
        if entries is None:
            raise HTTPException(404, "no such alert")
        if format == "json":
            return Response(orjson.dumps({"alert_id": alert_id, "entries": entries}), media_type="application/json")
        language = lang or view.settings.locale
        rows = export_rows(entries, language, names)
        if format == "csv":
            return Response(as_csv(rows), media_type="text/csv; charset=utf-8",
                            headers={"Content-Disposition": f'attachment; filename="ledger-{alert_id}.csv"'})
        return Response(as_xlsx(rows, words(language)["ledger"]), media_type=XLSX,
                        headers={"Content-Disposition": f'attachment; filename="ledger-{alert_id}.xlsx"'})

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
            with contextlib.suppress(ActionError):
                await view.acknowledge(alert_id, person, None, via="voice")
        return JSONResponse(VOICE_OK)

    return r
