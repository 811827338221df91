"""The error answers of the API, as /openapi.json documents them: a JSON body whose `detail` says what is wrong."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.requests import Request

from app.refusals import status_of as status_of  # the mapping, shared with the pages
from kernel.errors import Refused


class ErrorOut(BaseModel):
    """What is wrong, in words."""

    detail: str


class InvalidOut(BaseModel):
    """A request that does not fit: in words, or FastAPI's list of each field's problem."""

    detail: str | list[dict[str, Any]]


def error(description: str, model: type[BaseModel] = ErrorOut) -> dict[str, Any]:
    """One documented error answer."""
    return {"model": model, "description": description}


# Every route under /api/v1 may answer these.
API_ERRORS: dict[int | str, dict[str, Any]] = {
    400: error("The body is not JSON"),
    401: error("No token, or a token the service does not know (with WWW-Authenticate)"),
    403: error("The caller's role or scope lacks the right, or a filter names something outside it"),
    422: error("A parameter or the body does not fit", InvalidOut),
    429: error("Too many failed authentications from this address (with Retry-After)"),
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: error("No such thing in the caller's scope")}
CONFLICT: dict[int | str, dict[str, Any]] = {409: error("The alert's state does not allow the action")}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {503: error("The reading store does not answer")}


async def refused_answer(request: Request, exc: Exception) -> JSONResponse:
    """The answer to an action the service refused (kernel.errors.Refused): its status, and why in words."""
    assert isinstance(exc, Refused)
    return JSONResponse({"detail": str(exc)}, status_code=status_of(exc))
