"""Shared caches under ~/.cache/hub (Kafka's and Kafka Connect's jars, the Spark and Flink
virtualenvs) are installed one at a time (``infra/lib.sh`` ``one_install_at_a_time``): the two
test lanes of a checkout, and every checkout of the user, install into the same folder, and two
cold installs at once left Kafka's cache marked complete without two of its 46 jars (session 18,
by hand: the broker then cannot start until the cache is removed)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.ops.conftest import ROOT

# The shape of infra/kafka.sh's fetch: a partial folder removed and rebuilt, then moved in place
# and marked complete; the second installer finds it complete.
INSTALL = r"""
set -euo pipefail
SCRIPT=test; source "$ROOT/infra/lib.sh"
cache=$1
fetch_once() {
    if [[ -f $cache/.complete ]]; then echo found; return 0; fi
    rm -rf "$cache/libs.partial"; mkdir -p "$cache/libs.partial"
    for i in 1 2 3 4 5 6; do sleep 0.2; : >"$cache/libs.partial/$i.jar"; done
    rm -rf "$cache/libs"; mv "$cache/libs.partial" "$cache/libs"
    echo done >"$cache/.complete"; echo fetched
}
one_install_at_a_time "$cache.lock" 60 fetch_once
"""


def _install(cache: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["bash", "-c", INSTALL, "install", str(cache)],
        env={"ROOT": str(ROOT), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_installs_at_once_leave_one_complete_cache(tmp_path: Path) -> None:
    cache = tmp_path / "kafka-x"
    procs = [_install(cache), _install(cache)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert sorted(o.strip() for o, _ in outs) == ["fetched", "found"], outs
    assert sorted(f.name for f in (cache / "libs").iterdir()) == [f"{i}.jar" for i in range(1, 7)]
    assert not (cache / "libs.partial").exists()


def test_the_lock_is_released_when_the_install_returns(tmp_path: Path) -> None:
    # A script starts its daemon after the install: the daemon must not hold the lock.
    script = INSTALL.replace(
        'one_install_at_a_time "$cache.lock" 60 fetch_once',
        'one_install_at_a_time "$cache.lock" 60 fetch_once\nsetsid sleep 30 >/dev/null 2>&1 &',
    )
    cache = tmp_path / "c"
    env = {"ROOT": str(ROOT), "PATH": "/usr/bin:/bin"}
    subprocess.run(["bash", "-c", script, "x", str(cache)], env=env, check=True, timeout=60)
    started = time.monotonic()
    held = subprocess.run(["flock", "-n", str(cache) + ".lock", "true"], timeout=10)
    assert held.returncode == 0 and time.monotonic() - started < 5
