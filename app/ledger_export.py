"""The 叫应 call ledger of an alert as a spreadsheet (CSV or Excel), for the API and the alert page:
one row per call, statuses and ways of answering in words."""

from __future__ import annotations

import csv
import io
from typing import Any

from app.words import words

# The ledger's columns as exported, with the word of each header.
EXPORT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("place", "col_place"), ("duty", "col_duty"), ("person", "col_person"), ("attempt", "col_attempt"),
    ("called_at", "col_called"), ("due_at", "col_due"), ("channel", "col_channel"), ("sent_at", "col_sent"),
    ("delivery", "col_delivery"), ("delivered_at", "col_delivered"), ("status", "col_status"),
    ("answered_at", "col_answered"), ("answered_via", "col_via"), ("note", "col_note"))
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "xlsx": XLSX}


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


def export(alert_id: str, entries: list[dict[str, Any]], fmt: str, lang: str,
           names: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    """The ledger file in a format (csv or xlsx), and the headers that make the browser save it."""
    rows = export_rows(entries, lang, names)
    body = as_csv(rows) if fmt == "csv" else as_xlsx(rows, words(lang)["ledger"])
    return body, {"Content-Disposition": f'attachment; filename="ledger-{alert_id}.{fmt}"'}
