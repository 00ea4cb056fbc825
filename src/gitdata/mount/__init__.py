"""Mount mode: FUSE views of datasets (read-only) and rclone mounts of storages (read-write).

One module per job:

- :mod:`.tree`: the pure file tree a dataset mount shows (names and sizes from pointers);
- :mod:`.view`: the FUSE filesystem over :class:`gitdata.fs.Reader` (mfusepy);
- :mod:`.runner`: starting, checking and stopping mount processes, per-clone state;
- :mod:`.rclone`: the ``rclone mount`` command and environment of a storage mount.
"""

from __future__ import annotations

from ..errors import GitDataError


class MountError(GitDataError):
    """A mount could not be made, checked or removed."""


class FuseUnavailable(MountError):
    """FUSE cannot work on this machine (no /dev/fuse access, no fusermount3, no library)."""
