"""Provenance: run records, stale results, reruns, export.

* :mod:`.model` (pure): the run record (strict parse, one canonical
  encoding), folder digests, secret-looking variables, and the decisions:
  which runs are stale and why, which run produced a path, the order of a
  rerun.
* :mod:`.observe`: what the project holds now (identities of files and
  folders from the index, listings of URL inputs), and the ``runs`` rows of
  ``git data status``.
* :mod:`.runner`: ``git data run`` and ``rerun`` (stage inputs, run the
  command, keep earlier outputs on failure, write the record atomically).
* :mod:`.export`: the whole record as an RO-Crate (``ro-crate-metadata.json``).
"""
