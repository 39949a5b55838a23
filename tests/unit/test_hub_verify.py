"""hub-verify run as a subprocess (as an auditor would), plus in-process edge cases.

Exit status contract: 0 valid ("OK ..." on stdout), 1 invalid (reason on stderr), 2 bad usage.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from audit import verify
from audit.merkle import EMPTY_ROOT, MemoryTree, leaf_hash
from audit.note import checkpoint_hash, format_checkpoint, generate_key, sign_note

REPO = Path(__file__).resolve().parents[2]
LEAVES = [bytes.fromhex(x) for x in ["", "00", "10", "2021", "3031", "40414243"]]
# RFC 6962 root of the first 6 leaves of the transparency-dev/merkle vectors (see test_merkle).
ROOT6 = "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "audit.verify", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def proof_arg(proof: list[bytes]) -> str:
    return ",".join(p.hex() for p in proof)


@pytest.fixture(scope="module")
def tree() -> MemoryTree:
    t = MemoryTree()
    t.append_leaves([i.to_bytes(2, "big") for i in range(21)])
    return t


# --------------------------------------------------------------------------------------------
# root


def test_root(tmp_path: Path) -> None:
    f = tmp_path / "leaves.txt"
    f.write_text("".join(x.hex() + "\n" for x in LEAVES))  # first line empty: the empty leaf
    r = run("root", "--leaves-file", str(f))
    assert (r.returncode, r.stdout.strip()) == (0, ROOT6), r.stderr
    f.write_text("")
    r = run("root", "--leaves-file", str(f))
    assert (r.returncode, r.stdout.strip()) == (0, EMPTY_ROOT.hex())


def test_root_bad_usage(tmp_path: Path) -> None:
    f = tmp_path / "leaves.txt"
    f.write_text("00\nzz\n")
    r = run("root", "--leaves-file", str(f))
    assert r.returncode == 2 and "2" in r.stderr and "hex" in r.stderr
    r = run("root", "--leaves-file", str(tmp_path / "missing.txt"))
    assert r.returncode == 2 and "cannot read" in r.stderr
    r = run("root")
    assert r.returncode == 2


def test_root_in_process_edge_cases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "leaves.txt"
    f.write_text("\n")  # one empty leaf
    assert verify.main(["root", "--leaves-file", str(f)]) == 0
    assert capsys.readouterr().out.strip() == leaf_hash(b"").hex()
    f.write_text("AB\r\nab")  # CRLF and a missing final newline; either case of hex
    assert verify.main(["root", "--leaves-file", str(f)]) == 0
    want = MemoryTree()
    want.append_leaves([b"\xab", b"\xab"])
    assert capsys.readouterr().out.strip() == want.root().hex()
    f.write_text("abc\n")  # odd number of hex digits
    assert verify.main(["root", "--leaves-file", str(f)]) == 2


# --------------------------------------------------------------------------------------------
# inclusion


def test_inclusion(tree: MemoryTree) -> None:
    index, size = 5, 21
    leaf = tree.leaf_hash_at(index).hex()
    proof = tree.inclusion_proof(index, size)
    root = tree.root(size).hex()
    args = ["--leaf-hash", leaf, "--index", "5", "--size", "21", "--root", root]

    r = run("inclusion", *args, "--proof", proof_arg(proof))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OK ")

    r = run("inclusion", *args, "--proof", proof_arg(proof).upper())  # uppercase hex is fine
    assert r.returncode == 0, r.stderr

    tampered = list(proof)
    tampered[1] = bytes([tampered[1][0] ^ 1]) + tampered[1][1:]
    r = run("inclusion", *args, "--proof", proof_arg(tampered))
    assert r.returncode == 1 and "root" in r.stderr and r.stdout == ""

    wrong_index = [a if a != "5" else "6" for a in args]
    r = run("inclusion", *wrong_index, "--proof", proof_arg(proof))
    assert r.returncode == 1 and r.stderr

    r = run("inclusion", *args, "--proof", proof_arg(proof)[:-1])  # malformed hex
    assert r.returncode == 2 and "64 hex digits" in r.stderr
    r = run("inclusion", *args)  # missing --proof
    assert r.returncode == 2


def test_inclusion_single_leaf_empty_proof() -> None:
    leaf = leaf_hash(b"x").hex()
    r = run(
        "inclusion",
        "--leaf-hash",
        leaf,
        "--index",
        "0",
        "--size",
        "1",
        "--root",
        leaf,
        "--proof",
        "",
    )
    assert r.returncode == 0, r.stderr


def test_inclusion_in_process_usage(capsys: pytest.CaptureFixture[str]) -> None:
    h = "00" * 32
    base = ["inclusion", "--leaf-hash", h, "--index", "0", "--size", "1", "--root", h]
    for bad in (
        [*base, "--proof", "a,,b"],
        [*base, "--proof", "g" * 64],
        [*base, "--proof", "00 " * 32],
        ["inclusion", "--leaf-hash", h, "--index", "-1", "--size", "1", "--root", h, "--proof", ""],
        [
            "inclusion",
            "--leaf-hash",
            "xyz",
            "--index",
            "0",
            "--size",
            "1",
            "--root",
            h,
            "--proof",
            "",
        ],
    ):
        with pytest.raises(SystemExit) as exc:
            code = verify.main(bad)
            raise SystemExit(code)
        assert exc.value.code == 2, bad
    capsys.readouterr()
    assert verify.main([*base[:-1], "11" * 32, "--proof", ""]) == 1  # well formed, wrong root
    assert "INVALID" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# consistency


def test_consistency(tree: MemoryTree) -> None:
    proof = tree.consistency_proof(7, 21)
    r1, r2 = tree.root(7).hex(), tree.root(21).hex()
    args = ["--size1", "7", "--size2", "21", "--root1", r1, "--root2", r2]

    r = run("consistency", *args, "--proof", proof_arg(proof))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OK ")

    r = run("consistency", *args, "--proof", proof_arg(proof[:-1]))
    assert r.returncode == 1 and "too few" in r.stderr

    swapped = ["--size1", "7", "--size2", "21", "--root1", r2, "--root2", r1]
    r = run("consistency", *swapped, "--proof", proof_arg(proof))
    assert r.returncode == 1 and r.stderr

    r = run("consistency", *args, "--proof", "")  # empty proof where one is due
    assert r.returncode == 1 and "empty" in r.stderr

    r = run("consistency", "--size1", "7", "--size2", "21", "--root1", r1, "--proof", "")
    assert r.returncode == 2  # missing --root2

    r = run(
        "consistency", "--size1", "x", "--size2", "21", "--root1", r1, "--root2", r2, "--proof", ""
    )
    assert r.returncode == 2


def test_consistency_equal_sizes_empty_proof(tree: MemoryTree) -> None:
    r = tree.root(9).hex()
    res = run(
        "consistency", "--size1", "9", "--size2", "9", "--root1", r, "--root2", r, "--proof", ""
    )
    assert res.returncode == 0, res.stderr


# --------------------------------------------------------------------------------------------
# checkpoint


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory, tree: MemoryTree) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("cp")
    key = generate_key("example.com/hub")
    other = generate_key("example.com/hub")
    old = sign_note(
        format_checkpoint("example.com/hub", 7, tree.root(7), prev=bytes(32), time_micros=1000),
        key,
    )
    new_text = format_checkpoint(
        "example.com/hub", 21, tree.root(21), prev=checkpoint_hash(old), time_micros=2000
    )
    paths = {
        "key": d / "key.pub",
        "other_key": d / "other.pub",
        "old": d / "old.note",
        "new": d / "new.note",
        "tampered": d / "tampered.note",
        "by_other": d / "other.note",
        "bad_key": d / "bad.pub",
    }
    paths["key"].write_text(key.verifier.encode() + "\n")
    paths["other_key"].write_text(other.verifier.encode())
    paths["bad_key"].write_text("example.com/hub+00000000+AAAA")
    paths["old"].write_bytes(old)
    new = sign_note(new_text, key)
    paths["new"].write_bytes(new)
    paths["tampered"].write_bytes(new.replace(b"\n21\n", b"\n22\n"))
    paths["by_other"].write_bytes(sign_note(new_text, other))
    return paths


def test_checkpoint_valid(signed: dict[str, Path], tree: MemoryTree) -> None:
    r = run("checkpoint", str(signed["new"]), "--public-key", str(signed["key"]))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OK checkpoint")
    assert "size=21" in r.stdout and tree.root(21).hex() in r.stdout


def test_checkpoint_invalid(signed: dict[str, Path]) -> None:
    r = run("checkpoint", str(signed["tampered"]), "--public-key", str(signed["key"]))
    assert r.returncode == 1 and "does not verify" in r.stderr
    r = run("checkpoint", str(signed["by_other"]), "--public-key", str(signed["key"]))
    assert r.returncode == 1 and "no signature by a trusted key" in r.stderr
    r = run("checkpoint", str(signed["new"]), "--public-key", str(signed["other_key"]))
    assert r.returncode == 1


def test_checkpoint_bad_usage(signed: dict[str, Path], tmp_path: Path) -> None:
    r = run("checkpoint", str(signed["new"]), "--public-key", str(signed["bad_key"]))
    assert r.returncode == 2 and "verifier key" in r.stderr
    r = run("checkpoint", str(tmp_path / "nope"), "--public-key", str(signed["key"]))
    assert r.returncode == 2
    r = run("checkpoint", str(signed["new"]))
    assert r.returncode == 2


def test_checkpoint_chain(signed: dict[str, Path], tree: MemoryTree) -> None:
    key = ["--public-key", str(signed["key"])]
    r = run("checkpoint", str(signed["new"]), *key, "--previous", str(signed["old"]))
    assert r.returncode == 0 and "chains to" in r.stdout, r.stderr
    proof = proof_arg(tree.consistency_proof(7, 21))
    r = run(
        "checkpoint", str(signed["new"]), *key, "--previous", str(signed["old"]), "--proof", proof
    )
    assert r.returncode == 0 and "consistent" in r.stdout, r.stderr
    bad = proof_arg(tree.consistency_proof(8, 21))
    r = run(
        "checkpoint", str(signed["new"]), *key, "--previous", str(signed["old"]), "--proof", bad
    )
    assert r.returncode == 1
    # The old checkpoint does not name the new one as its predecessor.
    r = run("checkpoint", str(signed["old"]), *key, "--previous", str(signed["new"]))
    assert r.returncode == 1 and "prev hash" in r.stderr


# --------------------------------------------------------------------------------------------
# bundle (the evidence pack format is not defined yet: a hook that refuses cleanly)


def test_bundle_hook(tmp_path: Path) -> None:
    z = tmp_path / "evidence.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("manifest.json", json.dumps({"format": "hub-evidence/v0-unknown"}))
    r = run("bundle", str(z))
    assert r.returncode == 2 and "not supported" in r.stderr
    (tmp_path / "not.zip").write_text("hello")
    r = run("bundle", str(tmp_path / "not.zip"))
    assert r.returncode == 2 and "cannot open" in r.stderr


def test_bundle_hook_dispatches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    z = tmp_path / "evidence.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("manifest.json", json.dumps({"format": "test/v0"}))
    monkeypatch.setitem(verify.BUNDLE_FORMATS, "test/v0", lambda zf, manifest: "OK test bundle")
    assert verify.main(["bundle", str(z)]) == 0


def test_installed_script_if_present(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("hub-verify")
    if not script.exists():
        pytest.skip("hub-verify script not installed in this venv (pip install -e . adds it)")
    f = tmp_path / "leaves.txt"
    f.write_text("".join(x.hex() + "\n" for x in LEAVES))
    r = subprocess.run(
        [str(script), "root", "--leaves-file", str(f)], capture_output=True, text=True, timeout=60
    )
    assert (r.returncode, r.stdout.strip()) == (0, ROOT6)


def test_verifier_imports_nothing_but_audit_stdlib_and_cryptography() -> None:
    # An auditor runs hub-verify without the hub: importing it MUST NOT pull in our other packages.
    code = (
        "import sys, audit.verify, audit.merkle, audit.note\n"
        "ours = {'hub', 'domain', 'adapters', 'governance', 'projections', 'ml', 'infra'}\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ours)\n"
        "print(','.join(bad))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ""
