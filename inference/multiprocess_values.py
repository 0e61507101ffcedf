"""prometheus_client's multi-process values without a ``getpid`` system call per update.

With ``PROMETHEUS_MULTIPROC_DIR`` set (the transformer's ``--workers N``), every ``inc``,
``set`` and ``observe`` asks ``os.getpid()`` whether the process forked, a system call each
time: ~30 per request, 4 % of a transformer worker's CPU in a py-spy profile under load.
``MultiProcessValue`` takes the process identifier as a parameter; this one is cached and
refreshed in a forked child (``os.register_at_fork``), which is what the check is there for.

It must be installed before the process creates its first multi-process value: values created
earlier belong to the default class's own file handles, and two handles writing one file would
corrupt it. So it checks that this pid owns no file in the directory yet, and does nothing
otherwise. Re-check on a prometheus_client upgrade (``values.MultiProcessValue``).
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import values

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_pid = [os.getpid()]


def _refresh_pid() -> None:
    _pid[0] = os.getpid()


os.register_at_fork(after_in_child=_refresh_pid)


def _cached_pid() -> int:
    return _pid[0]


def install() -> bool:
    """Use the cached-pid value class; False when not in multi-process mode or too late."""
    directory = os.environ.get(MULTIPROC_ENV)
    current = values.ValueClass
    if not directory or not getattr(current, "_multiprocess", False):
        return False
    if getattr(current, "_cached_pid", False):
        return True
    if any(Path(directory).glob(f"*_{os.getpid()}.db")):
        return False  # this process already writes values through the default class
    value_class = values.MultiProcessValue(process_identifier=_cached_pid)
    value_class._cached_pid = True  # type: ignore[attr-defined]
    values.ValueClass = value_class
    return True
