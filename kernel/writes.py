"""Type aliases shared by every package that hands statements to the state database's commit."""

from __future__ import annotations

from typing import Any

# One SQL statement and the rows it is executed with, in the state database's transaction.
Write = tuple[str, list[tuple[Any, ...]]]
Row = tuple[Any, ...]
