"""The real ingest pipeline over a state database and a SQLite reading store in a test's directory,
with the test's own commit participant (tests only; fed by tests/memory_source.py)."""

from __future__ import annotations

from pathlib import Path

from ingest.decode import Decoder
from ingest.device_book import DeviceBook
from ingest.pipeline import CommitParticipant, Pipeline
from ingest.rejections import RejectionLog
from ingest.sqlite_store import SqliteStore
from ingest.state_thread import StateThread
from ingest.statedb import StateDB
from kernel.clock import SystemClock
from kernel.metrics import Registry
from kernel.reading import Reading, StatusUpdate
from kernel.settings import IngestSettings, Settings
from kernel.site import Site
from kernel.writes import Write


class Observer:
    """A participant that takes the batch as it fills (as the rules runner does): a test's subclass
    gives observe() and committed(); nothing of its own is written with the batch."""

    def seal(self, now_ns: int) -> list[Write]:
        return []

    def prepare(self, readings: list[Reading], statuses: list[StatusUpdate], now_ns: int) -> list[Write]:
        raise AssertionError("a participant with observe is sealed, not prepared")


def pipeline_of(tmp_path: Path, participant: CommitParticipant, settings: IngestSettings | None = None) -> Pipeline:
    """The pipeline of a one-community site (`c1`, topic prefix `cb`); the caller shuts its database
    thread down (`pipeline.state.executor.shutdown()`)."""
    site = Site(Settings.model_validate({"communities": [{"id": "c1", "name": "c1"}]}))
    clock = SystemClock()
    return Pipeline(settings=settings or IngestSettings(),
                    decoder=Decoder("cb", site, clock, max_past_s=86400, max_future_s=300),
                    devices=DeviceBook(site), state=StateThread(StateDB(tmp_path / "ingest.db")),
                    store=SqliteStore(tmp_path / "readings.db"), clock=clock, metrics=Registry(),
                    rejections=RejectionLog(10), participants=[participant])
