"""GET /api/v1/devices and a device's recent readings."""

# No `from __future__ import annotations`: FastAPI resolves the local dependency alias at definition time.
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel

from app.actions import check_community
from app.auth import Principal, TokenBook
from app.http.caller import bearer
from app.http.errors import NOT_FOUND, UNAVAILABLE
from app.view import ServiceView
from kernel.clock import NS, rfc3339
from kernel.ids import DeviceType


class DeviceOut(BaseModel):
    """A device's live state."""

    community: str
    device_type: str
    device_id: str
    building: str
    grid: str
    registered: bool
    online: bool | None
    status_at: str | None
    last_seen: str | None
    last_ts: str | None
    last_reading: dict[str, float | bool | str]
    readings: int
    duplicates: int
    lost: int
    firing: dict[str, str]


class ReadingOut(BaseModel):
    """One stored reading: its time and fields."""

    ts: str | None
    fields: dict[str, float | bool | str]


def router(view: ServiceView, tokens: TokenBook) -> APIRouter:
    """Devices' live state and recent readings."""
    r = APIRouter(prefix="/api/v1")
    Caller = Annotated[Principal, Depends(bearer(tokens))]

    @r.get("/devices", response_model=list[DeviceOut], summary="Every device's live state")
    async def devices(who: Caller, community: str | None = None, device_type: DeviceType | None = None,
                      building: str | None = None, grid: str | None = None,
                      online: bool | None = None) -> list[dict[str, Any]]:
        check_community(who, community)
        return [d for d in view.devices(who.scope)
                if not ((community and d["community"] != community)
                        or (device_type and d["device_type"] != device_type.value)
                        or (building and d["building"] != building) or (grid and d["grid"] != grid)
                        or (online is not None and d["online"] is not online))]

    @r.get("/devices/{device_id}/readings", response_model=list[ReadingOut], responses=NOT_FOUND | UNAVAILABLE,
           summary="A device's recent readings from the reading store, oldest first")
    async def readings(who: Caller, device_id: str,
                       minutes: Annotated[float, Query(gt=0, le=7 * 24 * 60)] = 60,
                       limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> list[dict[str, Any]]:
        # The reading store not answering is refused as unavailable (app/http/errors.py answers it).
        rows = await view.readings(who.scope, device_id, view.now_ns() - int(minutes * 60 * NS), limit)
        if rows is None:
            raise HTTPException(404, "no such device")
        return [{"ts": rfc3339(ts), "fields": fields} for ts, fields in rows]

    return r
