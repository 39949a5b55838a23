"""Attacks at the hub's edges found in session 15 (upstream inputs, files, secrets at rest).

1. A tenant's publisher ran ``hub publish FILE`` (or ``hub watch``): the records were stamped
   with tenant ``default``, not the key's own. The tenant's own readers lost them and tenant
   ``default``'s readers were given them. A file's records MUST carry the publishing key's tenant.
   ``hub connector run`` (db, http, debezium) did the same, and decided only
   ``connectors/<name>``, never the topic its config file names.
2. A ``unique`` rule's natural keys (``trade_id``) were remembered per topic, for every tenant
   at once. globex's publisher learnt, by its duplicate count, which trade ids acme had used,
   and made acme's next trades vanish as "duplicates" by sending their ids first. Keys MUST be
   remembered per tenant, on both ingest paths and after a restart (the windows' rebuild).
3. A file's source id was its SHA-256 alone: globex sending the same bytes as acme (a shared
   reference file) was told "already ingested" and nothing was written, and the answer told
   globex that someone had ingested that exact file. The same bytes for another topic were
   skipped too. A file MUST be "done" per (bytes, tenant, topic).
4. Under the usual umask 022 the data folder was 0755 with ``log.sqlite`` 0644, and the local
   object store (backups, evidence packs, lake files, witness copies) wrote folders 0755 and
   objects 0444: any local user read every tenant's records past the policy. The hub's folders
   MUST be 0700 and its objects unreadable by group and others, whatever the umask.
5. A recursive Avro type (``Node`` with a ``next: ["null", "Node"]``) registered by any key with
   ``schema.write`` let a 10 KB wire value nested 5,000 levels deep kill the hub with a
   segmentation fault: fastavro's compiled reader recurses on the C stack. The registry MUST
   refuse recursive types (directly, mutually, or through a reference) with a clear error, and
   ingest MUST refuse wire values whose writer schema is recursive all the same (one registered
   before the fix, or in an external registry), without decoding them.
6. A CSV header naming columns the schema lacks was refused with every name in the message,
   raw: a 16 MB header of two million names made a 1.2 MB message (over the record limit, so the
   lineage FAIL event that should record the failure could not be written), and a name holding
   a newline or an ESC sequence reached the message as such. The message MUST quote the names and
   stay bounded.
7. Tenant names were checked with ``re.match`` and a ``$`` anchor, which also matches before a
   final newline: an admin could issue a key for tenant ``"acme\n"``, a second tenant that
   prints as acme in every report and listing. Names MUST match whole.
8. A database connector whose cursor or key names no column of its table failed with a bare
   ``KeyError`` (an internal error); it MUST be a config error naming the columns there are.
9. One JSON line of 2 KB of brackets (``[[[[...]]]]``) in a file raised ``RecursionError``: the
   whole file failed as an internal error (its good records with it), and ``hub watch``, which
   moves only ``InvalidInput`` failures aside, died on it at every start. The line MUST be
   quarantined like any malformed line.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from adapters.local_objectstore import LocalObjectStore
from domain.envelope import Envelope
from hub.bootstrap import Hub, bootstrap
from hub.cli import main
from hub.settings import load_settings
from ingest.files import file_digest, publish_file
from ingest.pipeline import RawRecord
from tests.cli_keys import admin_key_file
from tests.service.accounts import open_accounts

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


def _tenants(data: Path, topic: str) -> list[str]:
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        return [
            Envelope.from_headers(r.headers).tenant
            for p in range(h.log.topic(topic).partitions)
            for r in h.log.scan(topic, p)
        ]
    finally:
        h.close()


def _acme_publisher(data: Path) -> str:
    admin_key_file(data)  # hub init first
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        open_accounts(h, ["ACC-1", "ACC-2"])
        return h.keys.create(["publisher"], owner="pat", tenant="acme").token
    finally:
        h.close()


def test_cli_publish_stamps_the_keys_tenant(tmp_path: Path) -> None:
    data = tmp_path / "data"
    token = _acme_publisher(data)
    f = tmp_path / "t.jsonl"
    f.write_text(json.dumps(TRADE) + "\n" + json.dumps({**TRADE, "trade_id": "T-2"}) + "\n")
    r = CliRunner().invoke(
        main, ["--data-dir", str(data), "--key", token, "publish", str(f), "-t", "trades"]
    )
    assert r.exit_code == 0, r.output
    assert _tenants(data, "trades") == ["acme", "acme"]


def test_cli_watch_stamps_the_keys_tenant(tmp_path: Path) -> None:
    data = tmp_path / "data"
    admin_key_file(data)
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        open_accounts(h, ["ACC-1"])
        # ingest.connector is an admin right; an admin of tenant acme watches acme's folder
        token = h.keys.create(["admin"], owner="ada", tenant="acme").token
    finally:
        h.close()
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "a.jsonl").write_text(json.dumps(TRADE) + "\n")
    args = [
        "--data-dir",
        str(data),
        "--key",
        token,
        "watch",
        str(inbox),
        "-t",
        "trades",
        "--once",
        "--settle",
        "0",
    ]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and "accepted=1" in r.output, r.output
    assert _tenants(data, "trades") == ["acme"]


def test_cli_db_connector_stamps_the_keys_tenant(tmp_path: Path) -> None:
    data = tmp_path / "data"
    admin_key_file(data)
    h = bootstrap(load_settings(environ={}, data_dir=data))
    try:
        open_accounts(h, ["ACC-1"])
        token = h.keys.create(["admin"], owner="ada", tenant="acme").token
    finally:
        h.close()
    db = tmp_path / "src.sqlite"
    con = sqlite3.connect(db)
    con.execute(f"CREATE TABLE trades ({', '.join(k + ' TEXT' for k in TRADE)})")
    con.execute(f"INSERT INTO trades VALUES ({','.join('?' * len(TRADE))})", list(TRADE.values()))
    con.commit()
    con.close()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"kind: db\nurl: sqlite:///{db}\ntable: trades\ntopic: trades\n"
        "cursor: executed_at\nkey: trade_id\n"
    )
    args = [
        "--data-dir",
        str(data),
        "--key",
        token,
        "connector",
        "run",
        "src",
        "--config",
        str(cfg),
    ]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0 and "accepted=1" in r.output.replace(" ", ""), r.output
    assert _tenants(data, "trades") == ["acme"]


@pytest.mark.parametrize("path", ["records", "columns", "rebuilt"])
def test_natural_keys_are_per_tenant(hub: Hub, tmp_path: Path, path: str) -> None:
    open_accounts(hub, ["ACC-1"])
    ids = [f"T-{i}" for i in range(3)]

    def send(tenant: str, trade_ids: list[str], h: Hub = hub) -> tuple[int, int]:
        if path == "records":
            raws = [RawRecord(b"", value={**TRADE, "trade_id": t}) for t in trade_ids]
            r = h.ingest.ingest("trades", raws, source=f"t:{tenant}", tenant=tenant)
        else:
            f = tmp_path / f"{tenant}-{len(trade_ids)}-{trade_ids[0]}.jsonl"
            q = str(len(tenant))  # the files differ: a file's digest is its source id
            rows = [{**TRADE, "trade_id": t, "quantity": q} for t in trade_ids]
            f.write_text("".join(json.dumps(row) + "\n" for row in rows))
            r = publish_file(h.ingest, f, "trades", tenant=tenant).result
        return r.accepted, r.duplicates

    # globex "probes" and pre-empts acme's ids; acme's own trades must all land
    assert send("globex", ids) == (3, 0)
    if path == "rebuilt":  # a restarted process rebuilds the windows from the log's headers
        hub.close()
        h = bootstrap(load_settings(environ={}, data_dir=hub.settings.data_dir))
        try:
            assert send("acme", ids, h) == (3, 0)
            assert send("acme", ids[:1], h) == (0, 1)  # a tenant's own repeat is still refused
            assert send("globex", ids[1:2], h) == (0, 1)
        finally:
            h.close()
        return
    assert send("acme", ids) == (3, 0)
    assert send("acme", ids[:1]) == (0, 1)  # a tenant's own repeat is still a duplicate


def test_the_same_file_for_another_tenant_is_ingested(hub: Hub, tmp_path: Path) -> None:
    open_accounts(hub, ["ACC-1"])
    f = tmp_path / "ref.jsonl"
    f.write_text(json.dumps(TRADE) + "\n")
    first = publish_file(hub.ingest, f, "trades", tenant="acme")
    assert (first.already_done, first.result.accepted) == (False, 1)
    again = publish_file(hub.ingest, f, "trades", tenant="acme")
    assert again.already_done  # a tenant's own file, sent twice, is still done once
    other = publish_file(hub.ingest, f, "trades", tenant="globex")
    assert (other.already_done, other.result.accepted) == (False, 1)


def test_a_position_stored_under_the_digest_alone_is_still_honoured(
    hub: Hub, tmp_path: Path
) -> None:
    """Files done before the fix, under ``file:<digest>``, are not ingested a second time."""
    open_accounts(hub, ["ACC-1"])
    f = tmp_path / "old.jsonl"
    f.write_text(json.dumps(TRADE) + "\n")
    legacy = f"file:{file_digest(f)[:16]}"
    hub.ingest.ingest("trades", [], source=legacy, position={"records": 1}, consumed=1, done=True)
    assert publish_file(hub.ingest, f, "trades").already_done
    assert not publish_file(hub.ingest, f, "trades", tenant="acme").already_done


def test_the_data_folder_and_local_objects_are_the_owners_alone(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        data = tmp_path / "fresh" / "data"
        bootstrap(load_settings(environ={}, data_dir=data)).close()
        assert data.stat().st_mode & 0o077 == 0, oct(data.stat().st_mode)
        root = tmp_path / "store"
        LocalObjectStore(root).put("backups/b1/chunks/ab", b"every tenant's rows")
        for p in (
            root,
            root / "backups",
            root / "backups" / "b1",
            root / "backups" / "b1" / "chunks",
        ):
            assert p.stat().st_mode & 0o777 == 0o700, (p, oct(p.stat().st_mode))
        obj = root / "backups" / "b1" / "chunks" / "ab"
        assert obj.stat().st_mode & 0o077 == 0, oct(obj.stat().st_mode)
        assert obj.read_bytes() == b"every tenant's rows"
    finally:
        os.umask(old)


NODE = {
    "type": "record",
    "name": "Node",
    "fields": [{"name": "v", "type": "int"}, {"name": "next", "type": ["null", "Node"]}],
}
MUTUAL = {
    "type": "record",
    "name": "A",
    "fields": [
        {
            "name": "b",
            "type": {
                "type": "record",
                "name": "B",
                "fields": [{"name": "a", "type": {"type": "array", "items": "A"}}],
            },
        }
    ],
}


def test_fastavro_still_crashes_on_deep_recursive_values() -> None:
    """Why the registry refuses recursive types: the decoder dies, it does not raise. When this
    fails (a fastavro that raises instead), the refusal can be revisited."""
    code = (
        "import io, fastavro\n"
        f"s = fastavro.parse_schema({NODE!r})\n"
        "fastavro.schemaless_reader(io.BytesIO(b'\\x00\\x02' * 20000 + b'\\x00\\x00'), s)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert r.returncode < 0 or r.returncode == 139, r


@pytest.mark.parametrize("schema", [NODE, MUTUAL], ids=["self", "mutual"])
def test_the_registry_refuses_recursive_types(hub: Hub, schema: dict) -> None:
    from core.errors import InvalidSchema

    with pytest.raises(InvalidSchema, match="recursive type"):
        hub.registry.register("trades-value", json.dumps(schema))
    assert hub.registry.register("flat-value", json.dumps({**NODE, "fields": NODE["fields"][:1]}))


def test_a_csv_header_of_millions_of_unknown_names_gets_a_short_quoted_error(
    hub: Hub, tmp_path: Path
) -> None:
    from ingest.files import FileUnreadable

    f = tmp_path / "wide.csv"
    names = ",".join(f"c{i}" for i in range(100_000))
    f.write_text(f'trade_id,"x\x1b[2J\nINFO forged",{names}\nT-1,a\n')
    with pytest.raises(FileUnreadable) as caught:
        publish_file(hub.ingest, f, "trades")
    message = caught.value.message
    assert len(message) < 2_000, len(message)
    assert "\x1b" not in message and "\n" not in message
    assert "100,001 column(s)" in message and "'c0'" in message


def test_a_tenant_name_with_a_trailing_newline_is_refused(hub: Hub) -> None:
    from core.errors import InvalidInput
    from core.ports.policy import Principal

    admin = Principal("root", frozenset({"admin"}), "default")
    with pytest.raises(InvalidInput, match="not a valid tenant name"):
        hub.keys.issue(admin, ["analyst"], owner="ann", tenant="acme\n")
    issued = hub.keys.issue(admin, ["analyst"], owner="ann", tenant="acme")
    assert hub.keys.get(issued.key_id).tenant == "acme"


def test_a_db_connector_naming_a_missing_column_gets_a_config_error(
    hub: Hub, tmp_path: Path
) -> None:
    from core.errors import ConfigError
    from ingest.db import DbConnector, DbSourceConfig

    db = tmp_path / "s.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, ts TEXT)")
    con.commit()
    con.close()
    cfg = DbSourceConfig(
        name="s", url=f"sqlite:///{db}", table="t", topic="trades", cursor="nope", key="id"
    )
    with pytest.raises(ConfigError, match=r"no column 'nope'.*'id', 'ts'"):
        DbConnector(hub.ingest, cfg).run()


_DEEP_WIRE = """
import json, struct, sys
from pathlib import Path
import registry.service
from hub.bootstrap import bootstrap
from hub.settings import load_settings
from ingest.pipeline import RawRecord

h = bootstrap(load_settings(environ={}, data_dir=Path(sys.argv[1])))
h.log.create_topic("chain", 1, {"hub.subject.strategy": "topic"})
registry.service.refuse_recursive = lambda parsed: None  # registered before the fix
sid = h.registry.register("chain-value", sys.argv[2]).id
value = b"\\x00" + struct.pack(">I", sid) + b"\\x00\\x02" * 20000 + b"\\x00\\x00"
r = h.ingest.ingest("chain", [RawRecord(value, kind="wire")], source="t")
print(json.dumps([r.accepted, r.rejected, [x.reason_code for x in r.rejections]]))
h.close()
"""


def test_a_deep_value_of_a_recursive_writer_schema_is_refused_not_decoded(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-c", _DEEP_WIRE, str(tmp_path / "data"), json.dumps(NODE)],
        capture_output=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
    )
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert json.loads(r.stdout.decode().strip().splitlines()[-1]) == [0, 1, ["recursive_schema"]]


def test_a_deeply_nested_json_line_is_quarantined_alone(hub: Hub, tmp_path: Path) -> None:
    from ingest.files import watch_once

    open_accounts(hub, ["ACC-1"])
    deep = json.dumps(TRADE)[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    inbox = tmp_path / "in"
    inbox.mkdir()
    (inbox / "a.jsonl").write_text(deep + "\n" + json.dumps(TRADE) + "\n")
    done = watch_once(hub.ingest, inbox, "trades")
    assert done == [("a.jsonl", "accepted=1 rejected=1 duplicates=0")], done
