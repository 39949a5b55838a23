"""The JVM twin of ``core.tenant_mac`` (``projections/flink/java/TenantMac.java``, which the
pattern jobs' ``hub_tenant_ok`` runs in their rowtime column) against the Python reference: the
same MAC bytes and the same verdict on genuine records and on every change a broker producer
could make, and the same keys read from ``HUB_FLINK_TENANT_KEY`` (``parse_keys``).

The Java class is compiled here with javac alone (it needs no Flink jar) and run by a small
harness over vectors on stdin; without a JDK the test skips (fails under CI: the Flink jobs need
one)."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.kafka_log import auth
from core import tenant_mac
from projections.flink import jvm
from tests.infra import in_ci

HARNESS = r"""
import hub.flink.TenantMac;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Map;

public class Vectors {
    static byte[] h(String s) { return s.equals("-") ? null : HexFormat.of().parseHex(s); }
    static String str(String s) { return new String(h(s), StandardCharsets.UTF_8); }

    public static void main(String[] args) throws Exception {
        BufferedReader in =
            new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        Map<String, TenantMac.Verifier> verifiers = new HashMap<>();
        while ((line = in.readLine()) != null) {
            String[] f = line.split(" ", -1);
            if (f[0].equals("mac")) { // key topic partition ts rkey value n (name value)*n
                Map<String, byte[]> headers = new HashMap<>();
                int n = Integer.parseInt(f[7]);
                for (int i = 0; i < n; i++) headers.put(str(f[8 + 2 * i]), h(f[9 + 2 * i]));
                byte[] key = h(f[1]);
                long p = Long.parseLong(f[3]), ts = Long.parseLong(f[4]);
                // one Verifier per key over all vectors, as the job's function keeps one
                TenantMac.Verifier v =
                    verifiers.computeIfAbsent(f[1], k -> new TenantMac.Verifier(key));
                byte[] mac = v.mac(str(f[2]), p, ts, h(f[5]), h(f[6]), headers);
                boolean ok = v.claimOk(str(f[2]), p, ts, h(f[5]), h(f[6]), headers);
                boolean once = TenantMac.claimOk(key, str(f[2]), p, ts, h(f[5]), h(f[6]), headers);
                // the job's path: the thread's memo, called twice per record (a hit), after the
                // previous vector (one field changed: a miss)
                TenantMac.Memo memo = TenantMac.Memo.thread();
                byte[] value = h(f[6]);
                boolean memo1 = memo.claimOk(v, str(f[2]), p, ts, h(f[5]), value, headers);
                boolean memo2 = memo.claimOk(v, str(f[2]), p, ts, h(f[5]), value, headers);
                boolean same = ok == once && ok == memo1 && ok == memo2;
                if (value != null && value.length > 0) { // its buffer changed in place afterwards
                    value[0] ^= 1;
                    boolean after = memo.claimOk(v, str(f[2]), p, ts, h(f[5]), value, headers);
                    same &= after == v.claimOk(str(f[2]), p, ts, h(f[5]), value, headers);
                    same &= !(ok && after);
                }
                System.out.println(HexFormat.of().formatHex(mac) + " " + ok + (same ? "" : " !"));
            } else if (f[0].equals("ns")) { // hubkey prefix topic p ts rkey value off legacy n (h)*
                Map<String, byte[]> headers = new HashMap<>();
                int n = Integer.parseInt(f[10]);
                for (int i = 0; i < n; i++) headers.put(str(f[11 + 2 * i]), h(f[12 + 2 * i]));
                byte[] key = h(f[1]);
                String prefix = str(f[2]);
                Long offset = f[8].equals("-") ? null : Long.valueOf(f[8]);
                String legacy = f[9].equals("-") ? null : str(f[9]);
                TenantMac.Namespace ns = new TenantMac.Namespace(key, prefix);
                boolean ok = ns.claimOk(TenantMac.Memo.thread(), str(f[3]), Long.parseLong(f[4]),
                    Long.parseLong(f[5]), h(f[6]), h(f[7]), headers, offset, legacy);
                byte[] bound = TenantMac.namespaceKey(key, prefix);
                System.out.println(HexFormat.of().formatHex(bound) + " " + ok);
            } else { // keys text prefix*
                TenantMac.Keys keys = TenantMac.Keys.parse(str(f[1]));
                StringBuilder out = new StringBuilder("keys");
                for (int i = 2; i < f.length; i++) {
                    byte[] k = keys.of(str(f[i]));
                    out.append(' ').append(k == null ? "-" : HexFormat.of().formatHex(k));
                }
                System.out.println(out);
            }
        }
    }
}
"""


def _hex(b: bytes | None) -> str:
    return "-" if b is None else (b.hex() or "")


@pytest.fixture(scope="module")
def java(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder holding the compiled TenantMac and the harness."""
    if not (shutil.which("javac") and shutil.which("java")):
        if in_ci():
            pytest.fail("javac/java are not on PATH: the Flink jobs' JVM functions need a JDK 17")
        pytest.skip("no JDK (javac) on PATH")
    out = tmp_path_factory.mktemp("tenant_mac_java")
    (out / "Vectors.java").write_text(HARNESS)
    mac_source = jvm.SOURCES / "TenantMac.java"
    javac = ["javac", "--release", "17", "-Xlint:all", "-Werror", "-d", str(out)]
    subprocess.run([*javac, str(mac_source)], check=True, capture_output=True, timeout=300)
    subprocess.run(
        [*javac, "-cp", str(out), str(out / "Vectors.java")],
        check=True,
        capture_output=True,
        timeout=300,
    )
    yield out


def _run(java: Path, lines: list[str]) -> list[str]:
    done = subprocess.run(
        ["java", "-cp", str(java), "Vectors"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return done.stdout.splitlines()


Vector = tuple[bytes, str, int, int, bytes | None, bytes | None, dict[str, bytes | None]]


def _vectors() -> list[Vector]:
    """Genuine records (sealed as the hub's writer seals them) and each change of one field."""
    rnd = random.Random(19)
    key = bytes(range(32))
    out: list[Vector] = []
    for i in range(40):
        topic = rnd.choice(["payments", "trades", "quotes", "päyments", "t"])
        partition = rnd.choice([0, 1, 7, 2**31 + 5, 2**32 - 1])
        ts = rnd.choice([0, 1_764_000_000_123, -1, 2**62])
        rkey = rnd.choice([None, b"", b"A1", os.urandom(20)])
        value = rnd.choice([None, b"", b"\0\0\0\0\x0b" + os.urandom(rnd.randrange(0, 300))])
        headers: list[tuple[str, bytes]] = [("ce_specversion", b"1.0")]
        if i % 5:
            headers.append(("ce_type", b"hub.payments.PaymentInitiated"))
        if i % 7:
            headers.append(("ce_time", b"2026-03-02T09:00:00.000000Z"))
        if i % 9:
            headers.append(("ce_tenant", rnd.choice([b"acme", b"default", "zürich".encode(), b""])))
        rnd.shuffle(headers)
        (tmac,) = auth.tenant_macs_rows(key, [(topic, partition, rkey, value, tuple(headers), ts)])
        sealed: dict[str, bytes | None] = {**dict(headers), tenant_mac.TMAC_HEADER: tmac}
        out.append((key, topic, partition, ts, rkey, value, sealed))
        changes: list[dict[str, bytes | None]] = [
            {**sealed, "ce_tenant": b"globex"},
            {**sealed, "ce_time": b"2026-04-01T09:00:00.000000Z"},
            {**sealed, "ce_type": None},
            {**sealed, tenant_mac.TMAC_HEADER: b""},
            {**sealed, tenant_mac.TMAC_HEADER: tmac[:-1]},
            {k: v for k, v in sealed.items() if k != tenant_mac.TMAC_HEADER},
            {**sealed, "ce_tenant": b"\xff\xfe"},  # not UTF-8
            {**sealed, "other": b"x"},  # not covered: still verifies
        ]
        out += [(key, topic, partition, ts, rkey, value, h) for h in changes]
        out.append((key, topic + "x", partition, ts, rkey, value, sealed))
        out.append((key, topic, partition, ts + 1, rkey, value, sealed))
        out.append((bytes(32), topic, partition, ts, rkey, value, sealed))
    # a record sealed with a non-UTF-8 tenant (never the hub's): verifies, but no claim
    bad = [("ce_tenant", b"\xc3\x28"), ("ce_time", b"x")]
    (tmac,) = auth.tenant_macs_rows(key, [("t", 0, None, b"v", tuple(bad), 5)])
    out.append((key, "t", 0, 5, None, b"v", {**dict(bad), tenant_mac.TMAC_HEADER: tmac}))
    return out


def test_the_jvm_function_agrees_with_the_python_reference(java: Path) -> None:
    vectors = _vectors()
    lines = []
    for key, topic, p, ts, rkey, value, headers in vectors:
        pairs = [f"{name.encode().hex()} {_hex(v)}" for name, v in headers.items()]
        lines.append(
            f"mac {key.hex()} {topic.encode().hex()} {p} {ts} {_hex(rkey)} {_hex(value)} "
            f"{len(pairs)} {' '.join(pairs)}"
        )
    got = _run(java, lines)
    assert len(got) == len(vectors)
    verdicts = []
    for (key, topic, p, ts, rkey, value, headers), line in zip(vectors, got, strict=True):
        covered = [(n, headers[n]) for n in tenant_mac.COVERED if n in headers]
        want_mac = tenant_mac.tenant_mac(key, topic, p, rkey, value, covered, ts)
        want_ok = tenant_mac.verified_tenant(key, topic, p, rkey, value, headers, ts) is not None
        assert line == f"{want_mac.hex()} {str(want_ok).lower()}", (topic, p, ts, headers)
        verdicts.append(want_ok)
    assert 20 < sum(verdicts) < len(verdicts) - 200  # both verdicts well represented


KEY = "ab" * 32
PREFIXES = ["a.", "b.", "", "z\u00e9."]


@pytest.mark.parametrize(
    "text",
    [
        KEY,
        KEY.upper(),
        " " + KEY + "\n",
        " ".join(KEY[i : i + 2] for i in range(0, 64, 2)),  # fromhex: spaces between pairs
        "ab" * 31,  # 31 bytes: too short
        KEY + "a",  # odd
        KEY[:-2] + "g0",  # not hex
        KEY[:-2] + "\uff10\uff10",  # full-width digits: not hex for Python
        "a b" + KEY,  # a space inside a pair
        "",
        '{"a.": "' + KEY + '", "b.": "' + "cd" * 40 + '"}',
        '{"a.": "' + KEY + '", "a.": "' + "cd" * 32 + '"}',  # repeated: the last one
        '{"a\\u002e": "' + KEY + '", "b.": 5, "": "' + KEY + '"}',  # escapes; a number skipped
        '{"z\\u00e9.": "' + KEY + '", "b.": [1, {"x": null}], "a.": NaN}',
        '{"b.": -Infinity, "a.": "' + KEY + '"}',
        '{"a.": "' + KEY + '"} x',  # trailing text: not JSON
        '{"a.": "' + KEY + '",}',  # trailing comma
        '{"a.": "' + KEY + '"',  # unterminated
        '{"a.\n": "' + KEY + '"}',  # a raw control character in a string
        '{"a.": 1.5e3, "b.": "' + KEY + '"}',
        '{"a.": 01, "b.": "' + KEY + '"}',
        '{"a.": -, "b.": "' + KEY + '"}',
        '{"a.": "' + KEY + '", "b.": "' + KEY[:-2] + '"}',
        '{ "a." :"' + KEY + '"\t}',
        "{}",
        "[]",
    ],
)
def test_the_jvm_function_reads_the_keys_as_parse_keys(java: Path, text: str) -> None:
    want = tenant_mac.parse_keys(text, PREFIXES)
    line = f"keys {text.encode().hex()} " + " ".join(p.encode().hex() or "" for p in PREFIXES)
    (got,) = _run(java, [line])
    assert got.split(" ")[1:] == [_hex(want.get(p)) for p in PREFIXES], text


def test_the_jvm_namespace_check_agrees_with_the_jobs_python_function(java: Path) -> None:
    """``TenantMac.Namespace`` (``hub_tenant_ok``) against ``tenant_mac.JobTenant`` (the Python
    jobs' ``hub_tenant``): the namespace's derived key byte for byte, and the same verdict for
    records sealed under the namespace's key or the hub's unbound key, at offsets below and
    above the legacy offsets, with legacy texts that do and do not parse (session 21)."""
    hub_key = bytes(range(32))
    headers = (("ce_type", b"hub.T"), ("ce_tenant", b"acme"), ("ce_time", b"2026"))
    legacies = [None, "", "0:5", "1:5,0:3", "0:5,", "0:٥", f"0:{1 << 63}", "0:9223372036854775807"]
    cases = []
    for prefix in ("", "a.", "zé."):
        for sealing in (tenant_mac.namespace_key(hub_key, prefix), hub_key, bytes(32)):
            covered = tenant_mac.covered(headers)
            tmac = tenant_mac.tenant_mac(sealing, "pay", 0, b"k", b"v", covered, 7)
            sealed = {**dict(headers), tenant_mac.TMAC_HEADER: tmac}
            for offset in (None, -1, 0, 2, 4, 5, 1 << 40):
                for legacy in legacies:
                    cases.append((prefix, sealed, offset, legacy))
    lines = []
    for prefix, sealed, offset, legacy in cases:
        pairs = [f"{n.encode().hex()} {_hex(v)}" for n, v in sealed.items()]
        off = "-" if offset is None else str(offset)
        text = "-" if legacy is None else legacy.encode().hex()
        lines.append(
            f"ns {hub_key.hex()} {prefix.encode().hex()} {b'pay'.hex()} 0 7 {b'k'.hex()} "
            f"{b'v'.hex()} {off} {text} {len(pairs)} {' '.join(pairs)}"
        )
    got = _run(java, lines)
    assert len(got) == len(cases)
    verdicts = []
    for (prefix, sealed, offset, legacy), line in zip(cases, got, strict=True):
        job = tenant_mac.JobTenant({prefix: hub_key})
        want = job(sealed, b"k", b"v", 0, 7, "pay", prefix, offset, legacy) == "acme"
        bound = tenant_mac.namespace_key(hub_key, prefix)
        assert line == f"{bound.hex()} {str(want).lower()}", (prefix, offset, legacy)
        verdicts.append(want)
    assert 20 < sum(verdicts) < len(verdicts) - 20
