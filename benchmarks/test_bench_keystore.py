"""KeyStore throughput: per-value encrypt/decrypt against raw AES-256-GCM in the same run.

Groups (each figure has its same-run baseline):
- ``keystore encrypt`` / ``keystore decrypt``: 64-byte values, warm key cache, 1,000 subjects
  round-robin; baseline: ``cryptography``'s AESGCM on one key with the same nonce generation and
  AAD building. Local keyring always; OpenBao (transit-derived keys) when it runs
  (``infra/openbao.sh start``).
- ``keystore new subject``: first use of a subject (key creation), local (one SQLite
  transaction with fsync) and OpenBao (transit round trips).
- ``shred record``: ``encrypt_pii`` + ``decrypt_pii`` of an AccountOpened record (3 PII fields);
  baseline: ``core.avro.serde.encode`` of the same record (the rest of the publish path's per-record
  cost).

Run: ``.venv/bin/pytest benchmarks/test_bench_keystore.py -q -s -p no:randomly``
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adapters.local_keystore import LocalKeyStore
from benchmarks.conftest import Report
from core.avro import serde
from core.avro.schema import parse_schema
from core.pii import decrypt_pii, encrypt_pii, encrypted_schema
from core.ports.keystore import KeyStore, bind_subject, make_aad
from domain.catalog import schema_text

OPS = int(os.environ.get("KEYSTORE_BENCH_OPS", "50000"))
SUBJECTS = [f"acct-{i:06d}" for i in range(1000)]
VALUE = os.urandom(64)
ROOT = Path(__file__).resolve().parents[1]


def openbao() -> KeyStore | None:
    done = subprocess.run(
        ["bash", str(ROOT / "infra" / "openbao.sh"), "status"], capture_output=True, timeout=30
    )
    if done.returncode != 0:
        return None
    from adapters.vault_keystore import VaultKeyStore

    port = os.environ.get("HUB_BAO_PORT", "18200")
    return VaultKeyStore(
        f"http://127.0.0.1:{port}", os.environ.get("HUB_BAO_TOKEN", "hub-dev-root")
    )


def rate(n: int, fn: object) -> float:
    t0 = time.perf_counter()
    fn()  # type: ignore[operator]
    return n / (time.perf_counter() - t0)


def bench_store(report: Report, name: str, ks: KeyStore) -> None:
    aads = [make_aad("accounts", "email", s, "acme") for s in SUBJECTS]
    for s in SUBJECTS:  # warm: keys exist and are cached
        ks.ensure_key(s)
    n = len(SUBJECTS)
    cts: list[bytes] = []

    def enc() -> None:
        for i in range(OPS):
            cts.append(ks.encrypt(SUBJECTS[i % n], VALUE, aads[i % n]))

    def dec() -> None:
        for i in range(OPS):
            ks.decrypt(SUBJECTS[i % n], cts[i], aads[i % n])

    report.add(
        "keystore encrypt",
        f"{name} encrypt (64 B)",
        rate(OPS, enc),
        "ops/s",
        baseline="raw AESGCM encrypt",
    )
    report.add(
        "keystore decrypt",
        f"{name} decrypt (64 B)",
        rate(OPS, dec),
        "ops/s",
        baseline="raw AESGCM decrypt",
    )


@pytest.mark.slow
def test_keystore_throughput(report: Report, tmp_path: Path) -> None:
    key = AESGCM(AESGCM.generate_key(bit_length=256))
    aads = [make_aad("accounts", "email", s, "acme") for s in SUBJECTS]
    header = b"\x01\x00\x00\x00\x01"
    n = len(SUBJECTS)
    raw: list[bytes] = []

    def enc() -> None:
        for i in range(OPS):
            nonce = os.urandom(12)
            raw.append(
                nonce
                + key.encrypt(nonce, VALUE, bind_subject(SUBJECTS[i % n], header, aads[i % n]))
            )

    def dec() -> None:
        for i in range(OPS):
            ct = raw[i]
            key.decrypt(ct[:12], ct[12:], bind_subject(SUBJECTS[i % n], header, aads[i % n]))

    report.add("keystore encrypt", "raw AESGCM encrypt", rate(OPS, enc), "ops/s")
    report.add("keystore decrypt", "raw AESGCM decrypt", rate(OPS, dec), "ops/s")

    local = LocalKeyStore(tmp_path / "keyring.sqlite", os.urandom(32))
    bench_store(report, "local keyring", local)
    fresh = [f"new-{i}" for i in range(300)]
    report.add(
        "keystore new subject",
        "local keyring ensure_key (fsync)",
        rate(len(fresh), lambda: [local.ensure_key(s) for s in fresh]),
        "keys/s",
    )
    local.close()

    bao = openbao()
    if bao is None:
        print("\nOpenBao is not running: its figures are left out (infra/openbao.sh start).")
        return
    bench_store(report, "openbao transit-derived", bao)
    tag = os.urandom(4).hex()
    fresh = [f"new-{tag}-{i}" for i in range(200)]
    report.add(
        "keystore new subject",
        "openbao ensure_key (create)",
        rate(len(fresh), lambda: [bao.ensure_key(s) for s in fresh]),
        "keys/s",
        baseline="local keyring ensure_key (fsync)",
    )
    cold = VaultKeyStoreCold(bao, fresh)
    report.add(
        "keystore new subject",
        "openbao first decrypt per process (derive)",
        rate(len(fresh), cold),
        "keys/s",
        baseline="local keyring ensure_key (fsync)",
    )
    for s in fresh:
        bao.destroy(s)
    bao.close()


class VaultKeyStoreCold:
    """Decrypt once per subject on a new client: the HMAC derivation round trip."""

    def __init__(self, bao: KeyStore, subjects: list[str]) -> None:
        from adapters.vault_keystore import VaultKeyStore

        assert isinstance(bao, VaultKeyStore)
        self.cts = [(s, bao.encrypt(s, VALUE, b"")) for s in subjects]
        self.other = VaultKeyStore(bao.url, bao._token)

    def __call__(self) -> None:
        for s, ct in self.cts:
            self.other.decrypt(s, ct, b"")


@pytest.mark.slow
def test_shred_record_throughput(report: Report, tmp_path: Path) -> None:
    plain = schema_text("hub.accounts.AccountOpened")
    log_text = encrypted_schema(plain)
    plain_schema = parse_schema(plain)
    datum = {
        "account_id": "acct-1",
        "customer_name": "Ada Lovelace",
        "email": "ada@example.com",
        "date_of_birth": date(1815, 12, 10),
        "country": "GB",
        "kyc_level": "ENHANCED",
        "risk_rating": "LOW",
        "base_currency": "GBP",
        "opened_at": datetime(2026, 1, 2, tzinfo=UTC),
    }
    ks = LocalKeyStore(tmp_path / "keyring.sqlite", os.urandom(32))
    n = OPS // 5
    subjects = SUBJECTS
    report.add(
        "shred record",
        "serde.encode AccountOpened (plain)",
        rate(n, lambda: [serde.encode(1, plain_schema, datum) for _ in range(n)]),
        "records/s",
    )
    encs: list[dict[str, object]] = []

    def enc() -> None:
        for i in range(n):
            encs.append(
                encrypt_pii(datum, plain, subjects[i % 1000], ks, "accounts", tenant="acme")
            )

    def dec() -> None:
        for i in range(n):
            decrypt_pii(encs[i], log_text, subjects[i % 1000], ks, "accounts", tenant="acme")

    for s in subjects:
        ks.ensure_key(s)
    report.add(
        "shred record",
        "encrypt_pii AccountOpened (3 PII fields)",
        rate(n, enc),
        "records/s",
        baseline="serde.encode AccountOpened (plain)",
    )
    report.add(
        "shred record",
        "decrypt_pii AccountOpened (3 PII fields)",
        rate(n, dec),
        "records/s",
        baseline="serde.encode AccountOpened (plain)",
    )
    assert json.loads(log_text)["fields"][1]["type"] == "bytes"
    ks.close()
