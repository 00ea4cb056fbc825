"""The remote-helper protocol's lines (gitremote-helpers(7)): pure parsing, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

#: URL schemes whose URLs name a bucket (the repository lives in storage).
BUCKET_SCHEMES = ("s3", "s3a", "gs", "gcs", "memory", "az", "abfs")


@dataclass(frozen=True)
class RefSpec:
    src: str  # "" = delete
    dst: str
    force: bool


def parse_push_line(line: str) -> RefSpec:
    spec = line.split(" ", 1)[1]
    force = spec.startswith("+")
    src, _, dst = spec.lstrip("+").partition(":")
    return RefSpec(src=src, dst=dst, force=force)


def parse_porcelain(out: str) -> dict[str, str | None]:
    """``git push --porcelain`` output -> ``dst -> None (ok) | reason``."""
    res: dict[str, str | None] = {}
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) < 3 or len(parts[0]) != 1:
            continue
        flag, refs, summary = parts[0], parts[1], parts[2]
        dst = refs.rpartition(":")[2]
        if flag == "!":
            reason = summary
            if summary.endswith(")") and "(" in summary:
                reason = summary[summary.rindex("(") + 1 : -1]
            res[dst] = reason or "rejected"
        else:
            res[dst] = None
    return res


@dataclass
class Options:
    dry_run: bool = False
    atomic: bool = False
    verbosity: int = 1
    progress: bool = False
    push_options: list[str] = field(default_factory=list)
    cas: list[str] = field(default_factory=list)
