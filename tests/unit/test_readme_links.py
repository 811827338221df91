"""Every relative link in README.md and docs/*.md points at a file of the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# [text](target) outside code; images too. Targets with a scheme or starting with '#' are not files.
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
_FENCE = re.compile(r"^```.*?^```", re.M | re.S)
_CODE = re.compile(r"`[^`\n]*`")


def relative_links(page: Path) -> list[str]:
    """The relative link targets of a page, without their #fragment."""
    text = _CODE.sub("", _FENCE.sub("", page.read_text(encoding="utf-8")))
    out = []
    for target in _LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        out.append(target.split("#", 1)[0])
    return out


def test_the_pages_exist_and_link_somewhere() -> None:
    assert (ROOT / "docs").is_dir()
    assert sum(len(relative_links(p)) for p in PAGES) > 0


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_resolves(page: Path) -> None:
    missing = [t for t in relative_links(page) if not (page.parent / t).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to missing files: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_no_link_leaves_the_repository(page: Path) -> None:
    outside = [t for t in relative_links(page) if ROOT not in (page.parent / t).resolve().parents
               and (page.parent / t).resolve() != ROOT]
    assert not outside, f"{page.relative_to(ROOT)} links outside the repository: {outside}"
