"""git data: research data in external storage, small pointer files in git.

The Python API (:mod:`gitdata.api`) is loaded on first use, so that
``import gitdata`` stays cheap for the filter process and the hooks.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# `status` is a module of this package (gitdata.status): its API function is
# gitdata.api.status (and Dataset.status).
_API = ("open", "stage", "Dataset", "SourceChanged", "ReadOnlyFileSystem", "GitDataFileSystem")
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'gitdata' has no attribute {name!r}")
