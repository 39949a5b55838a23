"""One-shot commands do not import pandas or the web framework (issue 13, session 23,
``clistart23``): ``hub ledger verify``, ``hub ledger entry`` / ``checkpoints``, ``hub publish
FILE`` and ``hub status`` each run in a fresh process and say which heavy modules they loaded
(``hub query`` needs pandas: chDB's Arrow output imports it). ``hub.nopandas`` gives pyarrow
the same answers it gives with pandas loaded (the same bytes), refuses pandas loudly while a
command runs, and leaves pyarrow's pandas support whole for the rest of the process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hub.bootstrap import bootstrap
from hub.settings import load_settings
from tests.cli_keys import admin_key_file
from tests.service.accounts import open_accounts

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("pandas", "fastapi", "starlette", "uvicorn", "opentelemetry.sdk")

_CHILD = (
    "import json, sys\n"
    "sys.argv[0] = 'hub'\n"
    "from hub.cli import main\n"
    "try:\n"
    "    main()\n"
    "finally:\n"
    f"    print('LOADED ' + json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)),"
    " file=sys.stderr)\n"
)

TRADE = {
    "trade_id": "T-1",
    "account_id": "ACC-1",
    "instrument": "AAPL",
    "side": "BUY",
    "quantity": "100",
    "price": "189.12345678",
    "currency": "USD",
    "executed_at": "2026-11-25T14:30:00.123456Z",
}


def _hub(data: Path, *args: str) -> tuple[str, list[str]]:
    """(stdout, the heavy modules loaded) of ``hub --data-dir DATA --key-file … ARGS`` in a
    fresh process; the command must succeed."""
    key = admin_key_file(data)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-c", _CHILD, "--data-dir", str(data), "--key-file", str(key)]
    done = subprocess.run(
        [*argv, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    line = [x for x in done.stderr.splitlines() if x.startswith("LOADED ")][-1]
    return done.stdout, json.loads(line.removeprefix("LOADED "))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("nopandas") / "data"
    admin_key_file(data)
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        open_accounts(h, ["ACC-1", "ACC-2"])
    finally:
        h.close()
    return data


def test_publish_a_file_loads_no_pandas(data: Path, tmp_path: Path) -> None:
    f = tmp_path / "t.jsonl"
    rows = [{**TRADE, "trade_id": f"T-{i}"} for i in range(5)]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out, loaded = _hub(data, "publish", str(f), "-t", "trades")
    assert "accepted=5 rejected=0" in out
    assert loaded == []


@pytest.mark.parametrize(
    "args",
    [
        ("ledger", "verify", "--full"),
        ("ledger", "verify"),
        ("ledger", "entry", "1"),
        ("ledger", "checkpoints", "--latest"),
        ("status",),
    ],
)
def test_one_shot_commands_load_no_pandas_nor_web_framework(
    data: Path, args: tuple[str, ...]
) -> None:
    _, loaded = _hub(data, *args)
    assert loaded == []


_CONVERT = """
import hashlib, sys
if sys.argv[1] == "gated":
    from hub.nopandas import without_pandas
    gate = without_pandas("test")
    gate.__enter__()
else:
    import pandas  # noqa: F401
import pyarrow as pa
from ingest.jsoncols import ColumnPlan  # noqa: F401  # the recording path's module
h = hashlib.sha256()
values = [
    ["a", None, "é"], [1, None, 3], [1.5, float("nan"), None], [True, None],
    [b"x", None], [None, None], [[1, 2], None], [{"k": "v"}, None],
]
for v in values:
    arr = pa.array(v)
    h.update(str(arr.type).encode())
    for b in arr.buffers():
        h.update(b"-" if b is None else b.to_pybytes())
    h.update(repr(arr.to_pylist()).encode())
ints = pa.array([1, None, 3], pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
h.update(ints.tobytes() + str(ints.dtype).encode())
ts = pa.array([0, 10**15], pa.int64()).cast(pa.timestamp("us", "UTC"))
h.update(ts.view(pa.int64()).to_numpy(zero_copy_only=False).tobytes())
print(h.hexdigest(), "pandas" in sys.modules)
"""


def test_pyarrow_converts_the_same_without_pandas() -> None:
    """The arrays (types, buffers, values) and NumPy views a command builds are the same
    whether pandas is unimportable or loaded."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = {}
    for mode in ("gated", "pandas"):
        done = subprocess.run(
            [sys.executable, "-c", _CONVERT, mode],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        out[mode] = done.stdout.split()
    assert out["gated"][1] == "False"
    assert out["pandas"][1] == "True"
    assert out["gated"][0] == out["pandas"][0]


_AFTER = """
import sys
from hub.nopandas import without_pandas
import pyarrow as pa
with without_pandas("hub ledger verify"):
    pa.array(["a", None])  # pyarrow's one attempt to import pandas happens here
    try:
        import pandas
    except ModuleNotFoundError as exc:
        print("refused:", "hub ledger verify" in str(exc))
import pandas as pd
print(pa.array(pd.Series(pd.Categorical(["x", "y"]))).type)
print(pa.array(pd.Series([1.0, float("nan")])).null_count)
"""


def test_pandas_refused_during_the_command_and_whole_after() -> None:
    """While the command runs, importing pandas fails naming the command; after it, pandas
    imports and pyarrow treats pandas objects as pandas objects again (a categorical Series
    is a dictionary array, NaN is null), not as plain sequences."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", _AFTER], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == [
        "refused: True",
        "dictionary<values=string, indices=int8, ordered=0>",
        "1",
    ]
