"""The session side of the mount service: HTTP+JSON over its Unix socket (stdlib only).

Used when ``GITDATA_MOUNT_SERVICE`` names the socket: ``stage --mount``,
``unmount`` and ``mount ls`` ask the service instead of mounting here.
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any
from urllib.parse import quote

from . import MountError

TIMEOUT = 120.0


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def call(path: str, method: str, url: str, body: dict[str, Any] | None = None,
         timeout: float = TIMEOUT) -> tuple[int, Any]:  # fmt: skip
    """``(status, decoded JSON)``; :class:`MountError` when the service does not answer."""
    conn = _UnixConnection(path, timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, url, body=data, headers={"Content-Type": "application/json"} if data else {})
        resp = conn.getresponse()
        raw = resp.read()
    except (OSError, http.client.HTTPException) as err:
        raise MountError(
            f"the mount service at {path} is not answering ({err.__class__.__name__}: {err}); ask the "
            "operator to restart it, or unset GITDATA_MOUNT_SERVICE to mount here"
        ) from None
    finally:
        conn.close()
    try:
        return resp.status, json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, ValueError):
        raise MountError(f"the mount service at {path} answered {resp.status} with something not JSON") from None


def _checked(path: str, status: int, data: Any, what: str) -> Any:
    if 200 <= status < 300:
        return data
    reason = data.get("error") if isinstance(data, dict) else None
    raise MountError(f"the mount service refused to {what}: {reason or f'HTTP {status}'}")


def mount(path: str, request: dict[str, Any]) -> dict[str, Any]:
    status, data = call(path, "POST", "/v1/mounts", request)
    return _checked(path, status, data, f"mount {request.get('kind')} {request.get('name')!r}")


def unmount(path: str, mount_id: str, *, force: bool = False) -> None:
    status, data = call(path, "DELETE", f"/v1/mounts/{quote(mount_id, safe='')}" + ("?force=true" if force else ""))
    if status == 404:
        return  # gone already (the service was restarted and cleaned it, or it never was)
    _checked(path, status, data, f"unmount {mount_id}")


def mounts(path: str) -> list[dict[str, Any]]:
    status, data = call(path, "GET", "/v1/mounts")
    return list(_checked(path, status, data, "list mounts")["mounts"])


def health(path: str) -> dict[str, Any]:
    status, data = call(path, "GET", "/v1/health")
    return _checked(path, status, data, "report health")
