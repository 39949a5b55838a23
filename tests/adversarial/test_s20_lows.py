"""Small trust leftovers of session 20.

1. Engine introspection through the SQL guard: ``version()``, ``currentDatabase()``,
   ``current_user``, ``sqlite_version()``, PostgreSQL's bare ``user``/``current_role`` ... are
   functions (or keywords) sqlglot knows by type, so the allowlist of engine-specific functions
   never saw them: any analyst read the engine's version, database and user names (what an
   attacker needs to pick an exploit). Now refused with the guard's ``query_refused``.
2. ``POST /v1/ledger/verify`` by one tenant's key with no verified note ran a full verification
   every time; now refused until a hub-wide key has verified once (then incremental).
3. The 503 ``parquet_decoders_busy`` now carries ``Retry-After``.
4. ``hub watch --help`` states the writer's rule (temporary name, then rename in).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlglot import exp

from core.errors import InvalidInput
from core.sqlguard import Dialect, guard
from hub.bootstrap import Hub
from ingest.files import parquet_batches
from ingest.parquet_pool import DecoderLimits, ParquetDecoders
from tests.adversarial._api import Api, basic, issue_key, start_api
from tests.adversarial.test_s20_parquet_decoder import _table, _write
from tests.adversarial.test_s20_verify_abuse import _officer, _publish
from tests.adversarial.test_sql_guard import ACME, hub  # noqa: F401 - the shared fixture
from tests.unit.test_sqlguard import GRANTS

# -- 1. engine introspection -----------------------------------------------------------------
INTROSPECTION: dict[Dialect, list[str]] = {
    "clickhouse": [
        "SELECT version() AS v",
        "SELECT currentDatabase() AS d",
        "SELECT current_database() AS d",
        "SELECT current_user AS u",
        "SELECT current_user() AS u",
        "SELECT currentUser() AS u",
        "SELECT currentSchemas(1) AS s",
        "SELECT account_id, version() AS v FROM positions",
    ],
    "postgres": [
        "SELECT version() AS v",
        "SELECT current_database() AS d",
        "SELECT current_user AS u",
        "SELECT session_user AS u",
        "SELECT user AS u",
        "SELECT current_role AS u",
        "SELECT current_schema AS s",
        "SELECT current_catalog AS c",
        "SELECT account_id FROM positions WHERE current_user = 'hub'",
    ],
    "sqlite": ["SELECT sqlite_version() AS v", "SELECT current_user AS u"],
}


@pytest.mark.parametrize(
    ("dialect", "sql"), [(d, q) for d, qs in INTROSPECTION.items() for q in qs]
)
def test_engine_introspection_is_refused_by_the_guard(dialect: Dialect, sql: str) -> None:
    with pytest.raises(InvalidInput) as info:
        guard(sql, dialect, GRANTS, lambda v: exp.table_(v, db="store"))
    assert info.value.code == "query_refused", info.value.message
    assert "not allowed" in info.value.message, info.value.message


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT version() AS v",
        "SELECT currentDatabase() AS d",
        "SELECT currentUser() AS u",
        "SELECT current_user AS u",
        "SELECT count() AS n, any(version()) AS v FROM positions",
    ],
)
def test_chdb_does_not_tell_an_analyst_its_version_or_user(hub: Hub, sql: str) -> None:  # noqa: F811
    with pytest.raises(InvalidInput) as info:
        hub.projections.query(hub.policy, ACME, sql, "analytics")
    assert info.value.code == "query_refused", info.value.message


def test_a_quoted_column_named_user_is_still_a_column() -> None:
    """Only the bare keyword is the engine's user: ``"user"`` names a column."""
    out = guard('SELECT "user" FROM positions', "postgres", GRANTS, lambda v: exp.table_(v))
    assert '"user"' in out


# -- 2. a tenant's key and the first (full) ledger verification -------------------------------
def test_a_tenant_key_does_not_run_the_first_full_verification(tmp_path: Path) -> None:
    """With no verified note (a fresh h, or one whose note is gone or invalid), every
    ``POST /v1/ledger/verify`` of one tenant's officer ran a FULL verification (every leaf of
    every tenant re-derived while every acknowledgement waits for its tail), as often as it
    liked. Now such a key is refused (409 ``first_verify_hub_wide``) until a hub-wide key has
    verified once; after that it verifies incrementally."""
    h, client = start_api(tmp_path / "data")
    try:
        api = Api(h, client, {"admin": issue_key(h, "admin", "root")})
        _publish(api, 5)
        officer = _officer(api)
        for _ in range(2):  # refused each time, nothing verified
            r = client.post("/v1/ledger/verify", headers=officer)
            assert r.status_code == 409, r.text
            assert r.json()["reason"] == "first_verify_hub_wide", r.text
            assert "hub-wide" in r.json()["message"], r.text
        assert not h.settings.ledger_verified_path.exists()
        first = client.post("/v1/ledger/verify", headers=api.admin)
        assert first.status_code == 200 and first.json()["ok"], first.text
        _publish(api, 2)
        again = client.post("/v1/ledger/verify", headers=officer)
        assert again.status_code == 200 and again.json()["ok"], again.text
        assert again.json()["incremental_from"] is not None, again.text
        # the note gone (or after a verify that saved none): refused again, not full
        h.settings.ledger_verified_path.unlink()
        r = client.post("/v1/ledger/verify", headers=officer)
        assert r.status_code == 409 and r.json()["reason"] == "first_verify_hub_wide", r.text
    finally:
        client.close()
        h.close()


def test_a_tenant_key_verifies_incrementally_when_the_full_check_is_due(tmp_path: Path) -> None:
    """The periodic full check (HUB_LEDGER_FULL_VERIFY_EVERY_S) is a hub-wide key's to run: a
    tenant's key, when it is due, still verifies from the last verified checkpoint."""
    h, client = start_api(tmp_path / "data")
    try:
        api = Api(h, client, {"admin": issue_key(h, "admin", "root")})
        _publish(api, 5)
        first = client.post("/v1/ledger/verify", headers=api.admin)
        assert first.status_code == 200 and first.json()["ok"], first.text
        _publish(api, 2)
        object.__setattr__(h.settings, "ledger_full_verify_every_s", 0)  # always due
        r = client.post("/v1/ledger/verify", headers=_officer(api))
        assert r.status_code == 200 and r.json()["ok"], r.text
        assert r.json()["incremental_from"] is not None, r.text
    finally:
        client.close()
        h.close()


# -- 3. parquet_decoders_busy tells when to come back ----------------------------------------
def test_parquet_decoders_busy_answers_with_retry_after(tmp_path: Path) -> None:
    """The 503 ``parquet_decoders_busy`` (every Parquet decoder held by other files) had no
    ``Retry-After``: a client could not tell "come back" from "broken" the way the other 503s
    (``verify_running``, ``body_budget_full``) say it."""
    h, client = start_api(tmp_path / "data")
    pool = ParquetDecoders(DecoderLimits(size=1, seconds=3.0, seconds_per_mib=0.0))
    held_file = _write(tmp_path / "held.parquet", _table(5000, "a"))
    other = _write(tmp_path / "other.parquet", _table(10, "b"))
    app = client.app

    @app.get("/test/parquet")  # type: ignore[attr-defined,untyped-decorator]
    def read_other() -> dict[str, int]:  # a route reading a Parquet file with the real pool
        return {"rows": sum(b.num_rows for b in parquet_batches(other, 100, 1 << 20, pool))}

    held = parquet_batches(held_file, 100, 1 << 20, pool)
    try:
        next(held)  # the only decoder is held by another file's consumer
        r = client.get("/test/parquet", headers=basic(issue_key(h, "admin", "root")))
        assert r.status_code == 503, r.text
        assert r.json()["reason"] == "parquet_decoders_busy", r.text
        assert int(r.headers["retry-after"]) >= 1, r.headers
    finally:
        held.close()
        pool.close()
        client.close()
        h.close()


# -- 4. hub watch --settle: the writer's rule is in the help ---------------------------------
def test_hub_watch_help_states_the_rename_rule_and_the_pause_case() -> None:
    """A writer pausing longer than --settle gets the part written before the pause published
    and the file moved to done/ (the rest is never read). No cheap check tells a paused writer
    from a finished one, so the rule is stated where the operator looks: write under a
    temporary name and rename into the folder."""
    from click.testing import CliRunner

    from hub.cli import main

    r = CliRunner().invoke(main, ["watch", "--help"], terminal_width=200)
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "temporary name" in text and "rename it into FOLDER" in text, text
    assert "pauses longer than --settle" in text, text
