"""Credential resolution for storages.

Order: the provider's own configuration (environment, profiles: what s3fs
and gcsfs read by themselves) comes first; this module only adds what the
project's per-clone configuration says. Secrets never enter ``.gitdata``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .project import Project


def resolve_options(project: Project, name: str | None, url: str, options: dict[str, Any]) -> dict[str, Any]:
    """Storage options for storage ``name``: tracked options plus per-clone overrides."""
    if not name:
        return options
    for line in project.repo.config_get_all(f"gitdata.remote.{name}.option"):
        key, sep, value = line.partition("=")
        if sep:
            from .config import parse_option_value

            options[key] = parse_option_value(value)
    return options
