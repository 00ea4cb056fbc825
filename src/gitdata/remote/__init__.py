"""git remotes: the ``s3data::`` remote helper and the repository kept in a bucket.

- :mod:`.protocol`: the helper protocol's lines (pure);
- :mod:`.manifest`: the bucket-hosted repository's manifests and push decisions (pure);
- :mod:`.bucket`: :class:`BucketRepo`, reading and writing packs and manifests;
- :mod:`.helper`: the remotes (a git URL, a bucket) and the protocol loop;
- :mod:`.entry`: ``main``, the ``git-remote-s3data`` program.
"""

from .bucket import BucketRepo
from .entry import main
from .helper import BucketRemote, GitUrlRemote, Helper, HelperError, is_bucket_url, open_remote
from .manifest import BucketRepoError, CorruptManifest, ForgedPack, Manifest, PushSpec, RemoteLocked

__all__ = [
    "BucketRemote",
    "BucketRepo",
    "BucketRepoError",
    "CorruptManifest",
    "ForgedPack",
    "GitUrlRemote",
    "Helper",
    "HelperError",
    "Manifest",
    "PushSpec",
    "RemoteLocked",
    "is_bucket_url",
    "main",
    "open_remote",
]
