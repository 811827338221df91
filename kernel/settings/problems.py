"""A reference between parts of the site file that does not resolve, with where it is."""

from __future__ import annotations


class ReferenceProblem(Exception):
    """A reference between parts of the file that does not resolve, with where it is."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


def _unique(what: str, ids: list[str], loc: tuple[str | int, ...]) -> None:
    """loc is the list's path then the key: the index of the second occurrence goes between them."""
    seen: set[str] = set()
    for i, value in enumerate(ids):
        if value in seen:
            raise ReferenceProblem((*loc[:-1], i, loc[-1]), f"{what} id {value!r} appears twice")
        seen.add(value)
