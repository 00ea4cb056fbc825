"""The user's git data credentials file (``$XDG_CONFIG_HOME/gitdata/credentials``)."""

from __future__ import annotations

import configparser
import contextlib
import fcntl
import io
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from .. import writer
from .target import CredentialsError, Secret, _config_home

FILE_MODE = 0o600


class InsecureCredentialsFile(CredentialsError):
    pass


def credentials_path(environ: Mapping[str, str] | None = None) -> str:
    return os.path.join(_config_home(os.environ if environ is None else environ), "gitdata", "credentials")


@dataclass
class StoredEntry:
    ident: str
    secret: Secret
    storages: list[str]


class CredentialsFile:
    """``$XDG_CONFIG_HOME/gitdata/credentials``: INI, one section per target.

    Written atomically with mode 0600 (under a lock); refused when group or
    others may read it, or when another user owns it.
    """

    def __init__(self, path: str | None = None) -> None:
        self.path = path or credentials_path()

    def _check_mode(self, fd: int) -> None:
        st = os.fstat(fd)
        if st.st_mode & 0o077 or st.st_uid != os.getuid():
            why = (
                f"its mode is {stat.filemode(st.st_mode)} (other users may read it)"
                if st.st_mode & 0o077
                else "it belongs to another user"
            )
            raise InsecureCredentialsFile(
                f"refusing to read credentials file {self.path}: {why}; fix it with "
                f"`chmod 600 {self.path}` (and consider replacing the keys it holds)"
            )

    def _read(self) -> configparser.ConfigParser:
        parser = configparser.ConfigParser(interpolation=None, default_section="\0")
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return parser
        with os.fdopen(fd, "r", encoding="utf-8") as f:
            self._check_mode(f.fileno())
            try:
                parser.read_file(f, source=self.path)
            except configparser.Error as err:
                # the parser's message may quote a line (a secret): give only its position
                where = getattr(err, "lineno", None)
                raise CredentialsError(
                    f"credentials file {self.path} is malformed"
                    + (f" near line {where}" if where else "")
                    + "; fix it or remove it and run `git data credentials set` again"
                ) from None
        return parser

    def entries(self) -> list[StoredEntry]:
        parser = self._read()
        out = []
        for ident in parser.sections():
            sec = parser[ident]
            secret = Secret(key=sec.get("key", ""), secret=sec.get("secret", ""), token=sec.get("token", ""))
            out.append(StoredEntry(ident, secret, sec.get("storages", "").split()))
        return out

    def get(self, ident: str) -> Secret | None:
        for entry in self.entries():
            if entry.ident == ident:
                return entry.secret
        return None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[configparser.ConfigParser]:
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        lock_fd = os.open(os.path.join(directory, ".credentials.lock"), os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            parser = self._read()
            yield parser
            self._write(parser)
        finally:
            os.close(lock_fd)

    def _write(self, parser: configparser.ConfigParser) -> None:
        buf = io.StringIO()
        buf.write("# git data credentials: secrets, keep private (mode 0600). Never commit this file.\n")
        parser.write(buf)
        # created 0600 (mkstemp) and kept so whatever the umask; durable before the rename
        writer.write_small(self.path, buf.getvalue().encode("utf-8"), mode=FILE_MODE, fsync=True)

    def set(self, ident: str, secret: Secret, storage: str | None = None) -> None:
        for name, value in (("key", secret.key), ("secret", secret.secret), ("token", secret.token)):
            if any(c in value for c in "\r\n\0"):
                raise CredentialsError(f"the {name} contains a line break or NUL; check what was pasted")
        with self._locked() as parser:
            old = parser[ident].get("storages", "").split() if parser.has_section(ident) else []
            if parser.has_section(ident):
                parser.remove_section(ident)
            parser.add_section(ident)
            names = sorted(set(old) | ({storage} if storage else set()))
            if names:
                parser[ident]["storages"] = " ".join(names)
            for key, value in (("key", secret.key), ("secret", secret.secret), ("token", secret.token)):
                if value:
                    parser[ident][key] = value

    def remove(self, ident: str) -> bool:
        if not os.path.exists(self.path):
            return False
        with self._locked() as parser:
            return parser.remove_section(ident)
