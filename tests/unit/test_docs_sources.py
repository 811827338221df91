"""docs/devices.md, "Connecting the devices you have", stays true: every site-file snippet of that part
passes the configuration checks on the example site, every profile file it shows passes its own
examples, the source reasons listed are the decoder's, and the built-in profiles listed are the ones
that come with the service."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import library, settings_from_text
from ingest.decode import SOURCE_REASONS
from ingest.sources.examples import run_examples
from kernel.settings.parsing import ProfileFile, parse_profiles

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "devices.md"
SITE_FILE = ROOT / "examples" / "site.yaml"
PART = DOC.read_text(encoding="utf-8").split("\n## Connecting the devices you have\n", 1)[1].split("\n## ", 1)[0]
# A fenced YAML block, indented or not (a block inside a list item is indented).
_YAML = re.compile(r"^( *)```yaml\n(.*?)^\1```", re.M | re.S)
SITE_KEYS = {"sources", "devices", "profiles", "profile_files", "rule_overrides", "timezone"}


def _blocks() -> list[str]:
    out = []
    for indent, body in _YAML.findall(PART):
        out.append("\n".join(line[len(indent):] for line in body.splitlines()))
    return out


BLOCKS = _blocks()
# A block that starts with a comment naming a file is that file: a profile file (`# profiles/name.yaml`),
# or another system's (Zigbee2MQTT's `# data/configuration.yaml …`). The others are site-file lines.
_NAMED = re.compile(r"# ([\w./-]+\.yaml)\b")
PROFILE_FILES = {m.group(1): b for b in BLOCKS if (m := _NAMED.match(b)) and m.group(1).startswith("profiles/")}
SITE_SNIPPETS = [b for b in BLOCKS if not _NAMED.match(b) and set(yaml.safe_load(b)) & SITE_KEYS]


def _merged(snippet: str) -> str:
    """The example site with the snippet's lists appended to its own, its other keys set."""
    raw: dict[str, Any] = yaml.safe_load(SITE_FILE.read_text(encoding="utf-8"))
    for key, value in yaml.safe_load(snippet).items():
        raw[key] = [*(raw.get(key) or []), *value] if isinstance(value, list) else value
    return yaml.safe_dump(raw, allow_unicode=True, sort_keys=False)


def test_the_part_shows_site_snippets_and_profile_files() -> None:
    assert len(SITE_SNIPPETS) >= 8, len(SITE_SNIPPETS)
    assert PROFILE_FILES, "no profile file shown"


@pytest.mark.parametrize("snippet", SITE_SNIPPETS, ids=[f"snippet{i}" for i in range(len(SITE_SNIPPETS))])
def test_every_site_snippet_passes_the_configuration_checks(snippet: str, tmp_path: Path) -> None:
    for name, text in PROFILE_FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    settings_from_text(_merged(snippet), source="site.yaml", base_dir=tmp_path, env={})


@pytest.mark.parametrize("name", sorted(PROFILE_FILES))
def test_every_profile_file_shown_passes_its_examples(name: str, tmp_path: Path) -> None:
    profiles = parse_profiles(ProfileFile(PROFILE_FILES[name], name, str(tmp_path)))
    results = [r for p in profiles for r in run_examples(p)]
    assert results, f"{name} has no examples"
    failed = [(r.name, r.expected, r.got) for r in results if not r.passed]
    assert not failed, failed


def _table_after(heading: str) -> list[str]:
    section = PART.split(heading, 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `([a-z0-9_-]+)` \|", section, re.M)


def test_the_source_reasons_listed_are_exactly_the_decoders() -> None:
    documented = _table_after("### Source reasons\n")
    assert sorted(documented) == sorted(SOURCE_REASONS)


def test_the_built_in_profiles_listed_are_the_ones_shipped() -> None:
    documented = _table_after("#### Profiles that come with the service\n")
    assert sorted(documented) == sorted(p.id for p in library())
