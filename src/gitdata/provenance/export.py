"""The project's datasets and runs as an RO-Crate (``ro-crate-metadata.json``, RO-Crate 1.1).

The project root is the crate root. Each dataset is a ``Dataset`` data
entity with its metadata (title, description, keywords, creators as
``Person`` entities, its registered sources as ``isBasedOn``); each run is a
``CreateAction`` (Process Run Crate profile) whose ``instrument`` is the
command, ``object`` its inputs, ``result`` its outputs, with start and end
time and the recorded environment variables as ``PropertyValue``s. Files and
folders carry their recorded identity as ``identifier``; URL inputs are
entities with the URL as ``@id``. Building the crate reads the records and
``.gitdata``; it writes nothing (the CLI writes the file).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .. import __version__
from .. import datasets as ds_mod
from ..project import Project
from . import model
from .observe import load_records

CONTEXT = "https://w3id.org/ro/crate/1.1/context"
SPEC = "https://w3id.org/ro/crate/1.1"
PROCESS_PROFILE = "https://w3id.org/ro/wfrun/process/0.5"
METADATA = "ro-crate-metadata.json"

_PERSON_RE = re.compile(r"^\s*(?P<name>[^<]*?)\s*(?:<(?P<email>[^>]+)>)?\s*$")


def _person(text: str) -> dict[str, Any]:
    m = _PERSON_RE.match(text)
    name = (m.group("name") if m else text) or text
    email = m.group("email") if m else None
    out: dict[str, Any] = {"@id": f"mailto:{email}" if email else "#person-" + re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-"),
                           "@type": "Person", "name": name}  # fmt: skip
    if email:
        out["email"] = email
    return out


def _now() -> str:
    import datetime as _dt

    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _entity_id(entry: model.Entry) -> str:
    if entry.kind == model.URL:
        return entry.path
    return entry.path + "/" if entry.kind == model.FOLDER else entry.path


NO_LICENSE = "no license stated: ask the project's authors before reusing its data"


def build(project: Project, records: Mapping[str, model.Record] | None = None, *, license: str | None = None) -> dict[str, Any]:
    """The crate's JSON-LD as a dict. ``license``: a URL (an SPDX page) or text."""
    if records is None:
        records = load_records(project)[0]
    graph: dict[str, dict[str, Any]] = {}

    def add(entity: dict[str, Any]) -> dict[str, Any]:
        have = graph.setdefault(entity["@id"], {})
        have.update({k: v for k, v in entity.items() if k not in have or k == "@type"})
        return {"@id": entity["@id"]}

    root: dict[str, Any] = {
        "@id": "./", "@type": "Dataset", "name": project.root.rstrip("/").rsplit("/", 1)[-1],
        "description": "A git data project: its datasets and the recorded runs that made its results",
        "conformsTo": [{"@id": PROCESS_PROFILE}], "hasPart": [], "mentions": [],
    }  # fmt: skip
    if license and "://" in license:
        root["license"] = add({"@id": license, "@type": "CreativeWork", "name": license.rstrip("/").rsplit("/", 1)[-1]})
    else:
        root["license"] = license or NO_LICENSE
    datasets = ds_mod.load_all(project)
    for ds in sorted(datasets.values(), key=lambda d: d.name):
        ent: dict[str, Any] = {"@id": ds.path + "/", "@type": "Dataset", "name": ds.title or ds.name,
                               "alternateName": ds.name}  # fmt: skip
        if ds.description:
            ent["description"] = ds.description
        if ds.keywords:
            ent["keywords"] = ", ".join(ds.keywords)
        if ds.created:
            ent["dateCreated"] = ds.created
        if ds.creators:
            ent["creator"] = [add(_person(c)) for c in ds.creators]
        if ds.sources:
            ent["isBasedOn"] = [add({"@id": s.url, "@type": "Dataset", "name": s.url}) for s in ds.sources]
            root["hasPart"] += ent["isBasedOn"]
        root["hasPart"].append(add(ent))
    tool = add({"@id": "#gitdata", "@type": "SoftwareApplication", "name": "git data", "version": __version__})
    for name in model.order(records) if records else []:
        rec = records[name]
        ids: dict[str, list[dict[str, Any]]] = {"object": [], "result": []}
        for key, entries in (("object", rec.inputs), ("result", rec.outputs)):
            for e in entries:
                ent = {"@id": _entity_id(e), "@type": "Dataset" if e.kind == model.FOLDER or (e.kind == model.URL and e.count is not None) else "File",
                       "identifier": e.identity, "name": e.path}  # fmt: skip
                owner = datasets.get(e.dataset) if e.dataset else None
                if owner is not None and e.path != owner.path:
                    ent["isPartOf"] = {"@id": owner.path + "/"}
                ref = add(ent)
                ids[key].append(ref)
                if ref not in root["hasPart"]:
                    root["hasPart"].append(ref)
        command = add({"@id": f"#command-{name}", "@type": "SoftwareApplication", "name": " ".join(rec.command)})
        action: dict[str, Any] = {
            "@id": f"#run-{name}", "@type": "CreateAction", "name": f"run {name}",
            "description": f"git data run -n {name}: {' '.join(rec.command)}",
            "instrument": command, "object": ids["object"], "result": ids["result"],
            "startTime": rec.started, "endTime": rec.ended,
            "actionStatus": {"@id": "http://schema.org/CompletedActionStatus"},
            "agent": tool,
        }  # fmt: skip
        if rec.env:
            action["environment"] = [
                add({"@id": f"#run-{name}-env-{k}", "@type": "PropertyValue", "name": k, "value": v}) for k, v in rec.env
            ]
        if rec.commit:
            action["identifier"] = f"git:{rec.commit}"
        root["mentions"].append(add(action))
    add({"@id": PROCESS_PROFILE, "@type": "CreativeWork", "name": "Process Run Crate", "version": "0.5"})
    ended = sorted(r.ended for r in records.values() if r.ended)
    root["datePublished"] = (ended[-1] if ended else _now())[:19] + "Z"
    descriptor = {"@id": METADATA, "@type": "CreativeWork", "conformsTo": {"@id": SPEC}, "about": {"@id": "./"}}
    entities = [descriptor, root, *(graph[k] for k in sorted(graph))]
    return {"@context": CONTEXT, "@graph": entities}
