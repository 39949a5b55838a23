"""A start MUST NOT rewrite a chDB view definition that is unchanged, for every projection
(s23, the check behind session 22's open item).

Session 22's red team listed the per-table views ``<t>__p`` of the aggregate tables as rewritten
(``CREATE OR REPLACE VIEW``) at every start, so a start on a full disk could empty one and stop
`hub serve`. ``views-start22`` compares each with the code's before replacing it; its tests
start the hub with two projections. This one starts it twice with every projection of the
catalog folded (each analytics store's aggregate, entity and append tables, their ``__p`` views
and read views): no metadata file changes bytes, inode or mtime.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from projections.catalog import PROJECTIONS
from tests.adversarial.test_s22_views_start import _files, _hub, _payment, _trade

pytest.importorskip("chdb")


def _start(data: Path, publish: bool) -> None:
    h = _hub(data)
    try:
        if publish:
            trades = [_trade(0, "10:00:00", "100"), _trade(1, "10:10:00", "110")]
            h.publisher.publish("trades", trades, producer="t", tenant="acme")
            h.publisher.publish("payments", [_payment(i) for i in range(3)], producer="t")
        h.projections.run([p.name for p in PROJECTIONS])
    finally:
        h.close()


def test_a_second_start_with_every_projection_rewrites_no_chdb_definition(
    tmp_path: Path,
) -> None:
    data = tmp_path / "d"
    _start(data, publish=True)
    folder = data / "views" / "chdb"
    before = _files(folder, "**/*.sql")
    assert any("__p.sql" in name for name in before)
    _start(data, publish=False)
    assert _files(folder, "**/*.sql") == before
