"""The supplies' ledger as a spreadsheet (CSV or Excel), for the API and the supplies page: one row per
movement, who, when, how much, why, and the stock after it."""

from __future__ import annotations

from typing import Any

from app.ledger_export import MEDIA_TYPES, as_csv, as_xlsx

# (key, zh-CN, en) of each column.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("at", "时间", "time"), ("community", "社区", "community"), ("supply_id", "物资编号", "supply"),
    ("name", "名称", "name"), ("delta", "变动", "change"), ("unit", "单位", "unit"),
    ("quantity", "变动后库存", "stock after"), ("reason", "原因", "reason"), ("note", "备注", "note"),
    ("actor", "经办人", "by"), ("role", "角色", "role"))
REASONS = {"used": ("领用", "used"), "restocked": ("入库", "restocked"), "count": ("盘点", "stock count"),
           "expired": ("过期报废", "expired")}


def ledger_rows(movements: list[dict[str, Any]], lang: str) -> list[list[str]]:
    """A header and one row per movement, reasons in words."""
    i = 2 if lang == "en" else 1
    out = [[c[i] for c in COLUMNS]]
    for m in movements:
        row = []
        for key, *_ in COLUMNS:
            value = m.get(key)
            if key == "reason":
                value = REASONS.get(str(value), (value, value))[i - 1]
            elif key == "delta" and isinstance(value, int) and value > 0:
                value = f"+{value}"
            row.append("" if value is None else str(value))
        out.append(row)
    return out


def ledger_file(movements: list[dict[str, Any]], fmt: str, lang: str) -> tuple[bytes, str, dict[str, str]]:
    """The ledger in a format (csv or xlsx), its media type, and the headers that make the browser save it."""
    rows = ledger_rows(movements, lang)
    body = as_csv(rows) if fmt == "csv" else as_xlsx(rows, "Supplies ledger" if lang == "en" else "物资台账")
    return body, MEDIA_TYPES[fmt], {"Content-Disposition": f'attachment; filename="supplies-ledger.{fmt}"'}
