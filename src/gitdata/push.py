"""Uploading the objects that commits reference to a data remote."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import GitDataError
from .project import Project
from .scan import Found, ScanResult
from .storage import ObjectStore
from .storage.base import SMALL_OBJECT
from .transfer import run_parallel

ZERO = "0" * 40


class PushFailed(GitDataError):
    pass


@dataclass
class PushReport:
    remote: str
    referenced: int = 0
    uploaded: list[str] = field(default_factory=list)
    already: int = 0
    skipped_registered: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # path -> reason

    def as_dict(self) -> dict[str, object]:
        return {
            "remote": self.remote,
            "referenced": self.referenced,
            "uploaded": len(self.uploaded),
            "already_on_remote": self.already,
            "registered_only": self.skipped_registered,
            "failed": self.failed,
        }


def push_objects(
    project: Project, scan: ScanResult, *, remote: str | None = None, progress: bool | None = None,
    store: ObjectStore | None = None,
) -> PushReport:
    """Upload every object ``scan`` references that the data remote lacks.

    Raises :class:`PushFailed` (after trying every object) if any could not be
    uploaded, naming the files and the remote.
    """
    if scan.malformed:
        bad = sorted(scan.malformed.items())
        listed = "; ".join(f"{path}: {reason}" for path, reason in bad[:10])
        more = f" (and {len(bad) - 10} more)" if len(bad) > 10 else ""
        raise PushFailed(
            f"malformed gitdata pointer(s) in the commits to push, nothing was pushed: {listed}{more}. "
            "Put the real content back (or `git rm` the file), commit, and push again"
        )
    routed_reports: list[PushReport] = []
    if store is None:
        # files of a dataset with its own storage go there, not to the data remote
        # (whichever data remote the rest goes to, and from `git push` too)
        from .datasets import split_by_storage

        scan, routed = split_by_storage(project, scan)
        routed_reports = [push_objects(project, sub, store=s, progress=progress) for s, sub in routed]
    by_oid: dict[str, Found] = scan.by_oid()
    registered = sum(1 for f in scan.found if f.pointer.oid is None)
    if store is None:
        if not by_oid:
            return _merged(PushReport(remote=remote or "-", skipped_registered=registered), routed_reports)
        store = project.object_store(remote)
    report = PushReport(remote=store.name or "-", referenced=len(by_oid), skipped_registered=registered)
    if not by_oid:
        return _merged(report, routed_reports)
    try:
        missing = store.missing(by_oid)
    except GitDataError as err:
        paths = sorted({f.path for f in by_oid.values()})
        shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
        raise PushFailed(
            f"could not upload data for {len(paths)} file(s) ({shown}) to data remote "
            f"{store.name!r}: {_missing_bucket(store) or err}"
        ) from err
    report.already = len(by_oid) - len(missing)
    cache = project.cache
    to_upload = []
    for oid in sorted(missing):
        if cache.has(oid):
            to_upload.append(oid)
        else:
            report.failed[by_oid[oid].path] = (
                f"object {oid} is neither in the local cache nor on data remote {store.name!r}"
            )
    sizes = {oid: by_oid[oid].pointer.size or 0 for oid in to_upload}
    mean = sum(sizes.values()) / max(1, len(sizes))
    outcome = run_parallel(
        to_upload,
        lambda oid: store.upload_cached(oid, cache),
        jobs=store.storage.workers(project.jobs, mean_size=mean),
        label=f"Uploading to {store.name}",
        weight=lambda oid: sizes[oid],
        retry=store.retrier,
        progress=progress,
        # many small uploads are Python work per object; an upload only reads the cache
        processes=project.processes if mean < SMALL_OBJECT else 1,
    )
    report.uploaded = sorted(outcome.done)
    for oid, err in outcome.failed.items():
        report.failed[by_oid[oid].path] = str(err)
    if report.failed and outcome.failed and (gone := _missing_bucket(store)):
        raise PushFailed(f"could not upload {len(report.failed)} object(s) to data remote {store.name!r}: {gone}")
    if report.failed:
        lines = [f"  {path}: {reason}" for path, reason in sorted(report.failed.items())[:20]]
        more = len(report.failed) - len(lines)
        if more > 0:
            lines.append(f"  ... and {more} more")
        raise PushFailed(
            f"could not upload {len(report.failed)} object(s) to data remote "
            f"{store.name!r} ({store.storage.display}):\n" + "\n".join(lines)
        )
    return _merged(report, routed_reports)


def _missing_bucket(store: ObjectStore) -> str | None:
    """After a failed upload: "bucket B does not exist at ENDPOINT; ..." when that is why, else None."""
    storage = store.storage
    if "://" not in storage.url or storage.url.startswith("file:"):
        return None  # a folder is created by the first upload
    from .bucketcheck import at_endpoint, root_problem

    try:
        problem = root_problem(storage)
    except GitDataError:
        return None  # no verdict: the upload's own errors say more
    if problem is None:
        return None
    return (
        f"{problem}{at_endpoint(storage.url, storage.options)} ({storage.display}); create it, or point "
        f"the data remote elsewhere (`git data remote rm {store.name}`, then `git data remote add`)"
    )


def _merged(report: PushReport, others: list[PushReport]) -> PushReport:
    for other in others:
        report.referenced += other.referenced
        report.uploaded += other.uploaded
        report.already += other.already
    return report


def parse_pre_push(stdin: str) -> tuple[list[str], list[str]]:
    """From pre-push input, the local shas to push and the remote shas git has."""
    include, exclude = [], []
    for line in stdin.splitlines():
        parts = line.split()
        if len(parts) != 4:
            continue
        _lref, lsha, _rref, rsha = parts
        if lsha != ZERO:
            include.append(lsha)
        if rsha != ZERO:
            exclude.append(rsha)
    return include, exclude


def pre_push(
    project: Project, remote_name: str, url: str | None, stdin_text: str, say: Callable[[str], None] | None = None
) -> PushReport | None:
    """What the pre-push hook does: upload the data of the commits being pushed.

    ``stdin_text`` is git's pre-push input. Objects reachable from what the
    remote already has (its remote-tracking refs, and the remote tips git
    reports that exist here) are not looked at again. ``s3data::`` URLs are
    skipped: git-remote-s3data uploads the data itself.
    """
    from .scan import scan_history

    include, exclude = parse_pre_push(stdin_text)
    if not include or (url or "").startswith("s3data::"):
        return None
    have = [sha for sha in exclude if project.repo.rev_parse(sha)]
    scan = scan_history(project.repo, include, [*have, f"--remotes={remote_name}"])
    if not scan.found and not scan.malformed:
        return None
    if say is not None:
        from .trust import notice_once

        notice_once(project, say)  # where .gitdata sends the data, once per clone
    return push_objects(project, scan, remote=project.data_remote_for(remote_name))
