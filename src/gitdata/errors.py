"""The project's base exception.

Every error a user can cause or fix derives from :class:`GitDataError`; its
message says what went wrong and, where possible, how to fix it. The CLI turns
these (and only these) into a one-line error and a non-zero exit status.
"""

from __future__ import annotations


class GitDataError(Exception):
    """An error the user can understand and act on."""

    exit_code = 1
