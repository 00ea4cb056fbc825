"""The mount service's API as an OpenAPI 3.1 document (served at ``GET /v1/openapi.json``).

tests/test_mount_service.py checks every answer of the running service
against the schemas here, so the document cannot drift from the code.
"""

from __future__ import annotations

from typing import Any

_ERROR = {"type": "object", "required": ["error"], "additionalProperties": False,
          "properties": {"error": {"type": "string", "minLength": 1}}}  # fmt: skip
_MOUNT = {
    "type": "object",
    "required": ["id", "uid", "kind", "name", "project", "mountpoint", "pid", "started", "log", "url", "state"],
    "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
        "uid": {"type": "integer", "minimum": 0},
        "kind": {"enum": ["dataset", "storage"]},
        "name": {"type": "string"},
        "project": {"type": "string"},
        "mountpoint": {"type": "string"},
        "pid": {"type": "integer"},
        "started": {"type": "number"},
        "log": {"type": "string"},
        "url": {"type": ["string", "null"]},
        "state": {"enum": ["healthy", "stale", "gone"]},
    },
}
_REQUEST = {
    "type": "object",
    "required": ["kind", "name", "project", "mountpoint"],
    "additionalProperties": False,
    "properties": {
        "kind": {"enum": ["dataset", "storage"]},
        "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"},
        "project": {"type": "string", "description": "absolute path of the project (under an allowed root)"},
        "mountpoint": {"type": "string", "description": "absolute path inside the project: an empty folder "
                       "owned by the caller"},
        "url": {"type": "string", "description": "storages: the s3:// URL"},
        "options": {"type": "object", "additionalProperties": False, "properties": {
            "endpoint_url": {"type": "string"}, "region_name": {"type": "string"}, "anon": {"type": "boolean"}}},
        "credentials": {"type": "object", "additionalProperties": False, "description": "go only into the "
                        "mount process's environment; never logged, stored or echoed",
                        "properties": {"key": {"type": "string"}, "secret": {"type": "string"},
                                       "token": {"type": "string"}}},
        "for_uid": {"type": "integer", "description": "root callers only: the user the mount is for"},
    },
}  # fmt: skip


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): {"$ref": "#/components/responses/Error"} for c in codes}


DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "git data mount service", "version": "1",
             "description": "Mounts for session processes that cannot mount (no /dev/fuse). Served on a "
                            "Unix socket; the caller is the socket's peer (SO_PEERCRED)."},  # fmt: skip
    "paths": {
        "/v1/health": {"get": {"operationId": "health", "responses": {
            "200": _json({"type": "object", "required": ["ok", "dynamic", "max_mounts", "yours"],
                          "additionalProperties": False, "properties": {
                              "ok": {"const": True}, "dynamic": {"type": "boolean"},
                              "max_mounts": {"type": "integer"}, "yours": {"type": "integer"}}},
                         "The service answers"), **_errors(400)}}},
        "/v1/mounts": {
            "get": {"operationId": "listMounts", "responses": {
                "200": _json({"type": "object", "required": ["mounts"], "additionalProperties": False,
                              "properties": {"mounts": {"type": "array",
                                                        "items": {"$ref": "#/components/schemas/Mount"}}}},
                             "The caller's mounts (never another user's)"), **_errors(400)}},
            "post": {"operationId": "mount",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": {"$ref": "#/components/schemas/MountRequest"}}}},
                     "responses": {"201": _json({"$ref": "#/components/schemas/Mount"}, "Mounted"),
                                   **_errors(400, 403, 409, 413, 429, 502)}},
        },
        "/v1/mounts/{id}": {"delete": {
            "operationId": "unmount",
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                           {"name": "force", "in": "query", "schema": {"enum": ["true", "false"]}}],
            "responses": {"200": _json({"type": "object", "required": ["unmounted", "kind", "name"],
                                        "additionalProperties": False, "properties": {
                                            "unmounted": {"type": "string"}, "kind": {"type": "string"},
                                            "name": {"type": "string"}}}, "Unmounted (uploads finished)"),
                          **_errors(404, 409)}}},
        "/v1/openapi.json": {"get": {"operationId": "openapi", "responses": {
            "200": _json({"type": "object"}, "This document")}}},
    },
    "components": {
        "schemas": {"Mount": _MOUNT, "MountRequest": _REQUEST, "Error": _ERROR},
        "responses": {"Error": _json({"$ref": "#/components/schemas/Error"}, "One reason, never a traceback")},
    },
}  # fmt: skip
