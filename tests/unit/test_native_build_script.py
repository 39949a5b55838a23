"""``native/build.sh`` under parallel ``make setup`` runs of two checkouts sharing the cached
build directory (``~/.cache/hub/native-target``): each installs ITS OWN library. A stand-in
``cargo`` (writes the checkout's path as the library, then takes a while) and a stand-in Python
(names the install folder) make the race of build and copy reproducible without Rust."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CARGO = """#!/bin/sh
mkdir -p "$CARGO_TARGET_DIR/release"
pwd > "$CARGO_TARGET_DIR/release/libhub_native.so"
sleep 1
"""
# As cargo does: a crate whose sources are not newer than its last build is fresh, and then
# nothing is copied to release/ (which keeps the LAST build's library, maybe another checkout's).
FRESHNESS_CARGO = """#!/bin/sh
mkdir -p "$CARGO_TARGET_DIR/release"
stamp="$CARGO_TARGET_DIR/$(pwd | tr / _).built"
if [ -e "$stamp" ] && [ ! src/lib.rs -nt "$stamp" ]; then exit 0; fi
pwd > "$CARGO_TARGET_DIR/release/libhub_native.so"
sleep 0.05
touch "$stamp"
"""
PYTHON = """#!/bin/sh
case "$2" in *sysconfig*) echo "$HUB_TEST_DEST" ;; *) echo "hub_native built" ;; esac
"""


def test_parallel_builds_of_two_checkouts_install_their_own_library(tmp_path: Path) -> None:
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for name, text in (("cargo", CARGO), ("python", PYTHON)):
        (bin_ / name).write_text(text)
        (bin_ / name).chmod(0o755)
    runs = []
    for checkout in ("a", "b"):
        native = tmp_path / checkout / "native"
        native.mkdir(parents=True)
        shutil.copy(ROOT / "native" / "build.sh", native / "build.sh")
        (native / "src").mkdir()
        (native / "src" / "lib.rs").write_text("// the crate root\n")
        (tmp_path / checkout / "site").mkdir()
        env = os.environ | {
            "PATH": f"{bin_}:{os.environ['PATH']}",
            "HUB_NATIVE_TARGET": str(tmp_path / "target"),  # shared, as the cache is
            "HUB_TEST_DEST": str(tmp_path / checkout / "site"),
            "CI": "",
        }
        runs.append(
            subprocess.Popen(
                ["bash", str(native / "build.sh"), str(bin_ / "python")],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        )
        time.sleep(0.3)  # b builds while a's build is still running
    for run in runs:
        _out, err = run.communicate(timeout=60)
        assert run.returncode == 0, err
    for checkout in ("a", "b"):
        installed = tmp_path / checkout / "site" / "hub_native.abi3.so"
        assert installed.read_text().strip() == str(tmp_path / checkout / "native")


def test_a_checkout_rebuilt_after_another_installs_its_own_library(tmp_path: Path) -> None:
    """a builds, b builds (the shared release/ now holds b's library), a builds again with no
    change: cargo would find a's crate fresh and copy nothing, so build.sh must make it rebuild
    rather than install b's library as a's."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for name, text in (("cargo", FRESHNESS_CARGO), ("python", PYTHON)):
        (bin_ / name).write_text(text)
        (bin_ / name).chmod(0o755)
    for checkout in ("a", "b"):
        native = tmp_path / checkout / "native"
        (native / "src").mkdir(parents=True)
        (native / "src" / "lib.rs").write_text("// the crate root\n")
        shutil.copy(ROOT / "native" / "build.sh", native / "build.sh")
        (tmp_path / checkout / "site").mkdir()

    def build(checkout: str) -> str:
        env = os.environ | {
            "PATH": f"{bin_}:{os.environ['PATH']}",
            "HUB_NATIVE_TARGET": str(tmp_path / "target"),
            "HUB_TEST_DEST": str(tmp_path / checkout / "site"),
            "CI": "",
        }
        done = subprocess.run(
            ["bash", str(tmp_path / checkout / "native" / "build.sh"), str(bin_ / "python")],
            env=env,
            capture_output=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return (tmp_path / checkout / "site" / "hub_native.abi3.so").read_text().strip()

    for checkout in ("a", "b", "a"):
        time.sleep(0.02)  # distinct modification times
        assert build(checkout) == str(tmp_path / checkout / "native")
