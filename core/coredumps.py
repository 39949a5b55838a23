"""Keep a hub process's memory out of core files (``forbid_core_dumps``).

A hub process holds every secret of the hub in memory: the key ring's master key and the data
keys it unwrapped (a subject's key is what an erasure destroys), the event log's MAC key, the
API key pepper, the ledger's signing key, and the PII it sealed or opened. A crash (a fault in
native code, an abort, ``kill -ABRT``) would write all of it to a core file wherever the
kernel's ``core_pattern`` says: the working folder, or a core handler's folder
(systemd-coredump, apport) that keeps it for weeks and feeds crash reports and host backups,
beyond the data folder's 0700, the KEK's separation and every later erasure.

``forbid_core_dumps``:
1. sets the process's core file size limit (the soft one) to 0: a child the process starts
   inherits it across ``exec`` (the Rego and Parquet children, which see tenants' data). The
   hard limit is left as it was: lowering it cannot be undone, and a process that forbade core
   dumps once (a test run, a shell's ``hub`` commands) could not start a later one that allows
   them (``HUB_CORE_DUMPS=true``);
2. marks the process non-dumpable (Linux ``prctl(PR_SET_DUMPABLE, 0)``): no core file through
   any handler (a piped ``core_pattern`` ignores the size limit), and other processes of the
   same user can no longer attach to it or read its memory and environment through /proc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import resource
import sys

_PR_SET_DUMPABLE = 4


def forbid_core_dumps() -> list[str]:
    """Steps 1 and 2 above; what could not be done (empty when both were), for a warning."""
    missed = []
    try:
        _, hard = resource.getrlimit(resource.RLIMIT_CORE)
        resource.setrlimit(resource.RLIMIT_CORE, (0, hard))  # 1.
    except (OSError, ValueError) as exc:
        missed.append(f"the core file size limit could not be set to 0 ({exc})")
    if sys.platform.startswith("linux"):  # 2.
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            if libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
                missed.append(f"prctl(PR_SET_DUMPABLE, 0) failed (errno {ctypes.get_errno()})")
        except (OSError, AttributeError) as exc:
            missed.append(f"prctl(PR_SET_DUMPABLE, 0) is unavailable ({exc})")
    return missed
