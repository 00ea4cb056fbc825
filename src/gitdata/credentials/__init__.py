"""Credential resolution for storages.

Every storage git data opens goes through :func:`resolve_options` (called by
``Project.open_storage``). For a storage that needs credentials (S3, GCS) the
first source that has some wins:

1. explicit options (``key``/``secret``, ``profile``, ``anon``, ``token``) and
   the provider's own configuration that needs no network: environment
   variables, ``AWS_PROFILE``, ``~/.aws/credentials``, ``~/.aws/config``,
   ``GOOGLE_APPLICATION_CREDENTIALS``, gcloud's application default
   credentials. git data then adds nothing and s3fs/gcsfs use them.
2. git's credential helpers (``git credential fill``), keyed by
   ``protocol=s3|gs``, ``host=<endpoint>``, ``path=<bucket>``; ``approve`` after
   the credentials worked, ``reject`` when the storage refused them.
3. the user's git data credentials file (``$XDG_CONFIG_HOME/gitdata/credentials``,
   mode 0600; refused when others can read it).
4. the provider's network sources (EC2 instance role, GCE metadata server).
5. an interactive prompt, only when the CLI enabled it (stdin is a terminal);
   otherwise :class:`CredentialsMissing` names ``git data credentials set``.

Credentials found in 2, 3 or 5 are checked once with one small request before
use. Secrets never enter ``.gitdata``, output, error messages or the
environment of child processes; :class:`Secret` hides them from ``repr``.

Modules, one job each (they import each other directly, never through this
``__init__``):

- ``target``: :class:`Target`, :class:`Secret`, the providers (S3, GCS) and
  :func:`target_for`, :func:`portable_options`;
- ``gitcred``: git's credential helpers (:func:`git_fill`, :func:`git_approve`,
  :func:`git_reject`);
- ``store``: the credentials file (:class:`CredentialsFile`);
- ``session``: :class:`Session`, who may be asked in this process;
- ``resolve``: :func:`resolve_options`, :func:`find_source`, the prompt, and
  :func:`project_storages`.
"""

from __future__ import annotations

from .gitcred import git_approve, git_fill, git_reject
from .resolve import (
    PROBE_KEY,
    CredentialsMissing,
    NamedStorage,
    Resolution,
    find_source,
    probe,
    project_storages,
    resolve_options,
)
from .session import Session, use_session
from .store import CredentialsFile, InsecureCredentialsFile
from .target import PROVIDERS, CredentialsError, Secret, Target, mask, portable_options, target_for

__all__ = [
    "PROBE_KEY",
    "PROVIDERS",
    "CredentialsError",
    "CredentialsFile",
    "CredentialsMissing",
    "InsecureCredentialsFile",
    "NamedStorage",
    "Resolution",
    "Secret",
    "Session",
    "Target",
    "find_source",
    "git_approve",
    "git_fill",
    "git_reject",
    "mask",
    "portable_options",
    "probe",
    "project_storages",
    "resolve_options",
    "target_for",
    "use_session",
]
