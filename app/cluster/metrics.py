"""/metrics of an instance of a cluster: the registries of the partitions it holds, as one exposition
with each sample labelled with its partition (every family once), after the instance's own. Every
instance exposes its own partitions: Prometheus scraping every instance sees the whole site, each
partition once (where it is held at the time)."""

from __future__ import annotations

PARTITION_LABEL = "partition"


def merged(own: str, partitions: dict[int, str]) -> str:
    """Prometheus text of the instance's own registry and its partitions' (labelled by partition)."""
    heads: dict[str, list[str]] = {}
    samples: dict[str, list[str]] = {}
    for p, text in sorted(partitions.items()):
        family = ""
        for line in text.splitlines():
            if line.startswith(("# HELP ", "# TYPE ")):
                family = line.split(" ", 3)[2]
                head = heads.setdefault(family, [])
                if len(head) < 2 and line not in head:
                    head.append(line)
                samples.setdefault(family, [])
            elif line and not line.startswith("#"):
                samples.setdefault(family, []).append(labelled(line, p))
    out = [own.rstrip("\n")] if own.strip() else []
    for family, lines in samples.items():
        out += heads.get(family, [])
        out += lines
    return "\n".join(out) + "\n"


def labelled(line: str, partition: int) -> str:
    """A sample line with the partition's label added."""
    cut = min((i for i in (line.find("{"), line.find(" ")) if i >= 0), default=len(line))
    label = f'{PARTITION_LABEL}="{partition}"'
    if cut < len(line) and line[cut] == "{":
        rest = line[cut + 1:]
        return f"{line[:cut]}{{{label}{'' if rest.startswith('}') else ','}{rest}"
    return f"{line[:cut]}{{{label}}}{line[cut:]}"
