"""吹哨报到 over the whole site, on any instance: WhistleView's own queries and figures, run on the rows
every partition's state database answers (merged here), and each action taken in the partition that
has the whistle (a new one in its community's)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from app.cluster.calls import Calls
from app.cluster.wire import WHISTLE_SELECTS
from app.whistle_view import WhistleView
from kernel.clock import Clock
from kernel.settings import Settings
from kernel.site import Site
from orders.book import LinkMaker, OrderBook, WhistleLinkMaker
from orders.store import WHISTLE_COLUMNS

QUERY_OF = {sql: name for name, sql in WHISTLE_SELECTS.items()}
CREATED = WHISTLE_COLUMNS.index("created_ns")
REMEMBERED = 10_000  # whistles whose partition is remembered


class LinkedBook(OrderBook):
    """The book the pages format work orders with; the links set on it (app/api.py) reach the books of
    the partitions held here, which send the departments their links."""

    def __init__(self, settings: Settings, books: Callable[[], Iterable[OrderBook]]) -> None:
        self._books = books
        self._link_for: LinkMaker | None = None
        self._whistle_link: WhistleLinkMaker | None = None
        s = settings
        super().__init__(s.departments, supervisors=s.whistles.supervisors or
                         [r.id for r in s.recipients if r.role == "street_office"],
                         recipients=[r.id for r in s.recipients], locale=s.locale)

    @property
    def link_for(self) -> LinkMaker | None:
        return self._link_for

    @link_for.setter
    def link_for(self, make: LinkMaker | None) -> None:
        self._link_for = make
        self.share()

    @property
    def whistle_link(self) -> WhistleLinkMaker | None:
        return self._whistle_link

    @whistle_link.setter
    def whistle_link(self, make: WhistleLinkMaker | None) -> None:
        self._whistle_link = make
        self.share()

    def share(self) -> None:
        """Give the links to every partition's book held here (again when a partition starts here)."""
        for book in self._books():
            book.link_for, book.whistle_link = self._link_for, self._whistle_link


class ClusterWhistleView(WhistleView):
    """Whistles and work orders of every partition."""

    def __init__(self, settings: Settings, site: Site, clock: Clock, calls: Calls,
                 partition_of: Callable[[str], int], books: Callable[[], Iterable[OrderBook]]) -> None:
        # (WhistleView's runner is the partitions': no orders run here)
        self.settings, self.site, self.clock = settings, site, clock
        self.book = LinkedBook(settings, books)
        self.names = {r.id: r.name for r in settings.recipients}
        self._select = self._rows
        self._calls, self._partition_of = calls, partition_of
        self._where: dict[str, int] = {}  # whistle id -> its partition, as learnt

    async def _rows(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """One of the orders' queries, on the partition of its whistle when known, else on every one."""
        name = QUERY_OF[sql]
        whistle_id = _whistle_of(name, params)
        known = self._where.get(whistle_id) if whistle_id is not None else None
        partitions = [known] if known is not None else self._calls.all()
        answers = await self._calls.gather(partitions, "whistles.select", q=name, p=list(params))
        rows: list[tuple[Any, ...]] = []
        for p, got in sorted(answers.items()):
            rows += got
            if got and whistle_id is not None:
                self._remember(whistle_id, p)
        if name == "whistles_since":
            rows.sort(key=lambda r: r[CREATED], reverse=True)
        elif name == "sent_between":
            rows.sort(key=lambda r: (r[5], r[1]))
        return rows

    def _remember(self, whistle_id: str, partition: int) -> None:
        if len(self._where) >= REMEMBERED:
            self._where.pop(next(iter(self._where)))
        self._where[whistle_id] = partition

    def _partitions_of(self, whistle_id: str) -> list[int]:
        known = self._where.get(whistle_id)
        return [known] if known is not None else self._calls.all()

    async def blow(self, *, grade: str, what: str, where: str, community: str, grid: str, alert_id: str | None,
                   blower: str, departments: list[str]) -> dict[str, Any]:
        """Blow a whistle in its community's partition."""
        body: dict[str, Any] = await self._calls.act_in(
            self._partition_of(community), "whistles.blow", grade=grade, what=what, where=where, community=community,
            grid=grid, alert_id=alert_id, blower=blower, departments=departments)
        self._remember(str(body["id"]), self._partition_of(community))
        return body

    async def step(self, order_id: str, step: str, actor: str, note: str | None) -> dict[str, Any]:
        """A department's step, in the partition that has the work order."""
        whistle_id = order_id.rpartition(".")[0]
        body: dict[str, Any] = await self._calls.act_somewhere(self._partitions_of(whistle_id), "whistles.step",
                                                               order_id=order_id, step=step, actor=actor, note=note)
        return body

    async def confirm(self, whistle_id: str, department: str, actor: str, rating: int,
                      note: str | None) -> dict[str, Any]:
        """The whistle-blower confirms and rates, in the partition that has the whistle."""
        body: dict[str, Any] = await self._calls.act_somewhere(
            self._partitions_of(whistle_id), "whistles.confirm", whistle_id=whistle_id, department=department,
            actor=actor, rating=rating, note=note)
        return body


def _whistle_of(query: str, params: tuple[Any, ...]) -> str | None:
    """The one whistle a query is about, if it is about one."""
    if query in ("one_whistle", "orders_of", "events_of"):
        return str(params[0])
    if query == "sent_between":
        return str(params[0])[:-1]  # ("{id}.", "{id}/")
    return None
