"""The contracts of the FeatureStore and ModelRegistry ports (``core.ports.ml``), one abstract
suite each, subclassed per adapter (``test_ml_local.py``; Feast and MLflow adapters are to come)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.errors import Conflict, NotFound
from core.ports.eventlog import TopicPartition
from core.ports.ml import AttributeVersion, FeatureStore, ModelRegistry, SeriesPoint

Reopen = Callable[[FeatureStore], FeatureStore]


class FeatureStoreContract:
    @pytest.fixture
    def store(self) -> FeatureStore:
        raise NotImplementedError

    @pytest.fixture
    def reopen(self) -> Reopen:
        raise NotImplementedError

    def test_series_are_read_by_half_open_range_in_time_order(self, store: FeatureStore) -> None:
        store.apply(
            [SeriesPoint("s", "A", t, float(t)) for t in (30, 10, 20, 40)]
            + [SeriesPoint("s", "B", 15, 1.0), SeriesPoint("other", "A", 20, 9.0)],
            [],
            {},
        )
        assert store.series("s", ["A", "B", "C"], 10, 40) == {
            "A": [(10, 10.0), (20, 20.0), (30, 30.0)],
            "B": [(15, 1.0)],
        }
        assert store.series("s", ["A"], 41, 100) == {}

    def test_series_columns_are_the_series_as_arrays(self, store: FeatureStore) -> None:
        points = [SeriesPoint("s", e, t, float(t)) for e in ("B", "A", "C") for t in (9, 3, 5)]
        store.apply([*points, SeriesPoint("s", "A", 5, -1.0), SeriesPoint("x", "A", 4, 0)], [], {})
        asked = ["C", "A", "Z", "B"]
        ent, times, values = store.series_columns("s", asked, 4, 9)
        expected = [
            (i, t, v)
            for i, e in enumerate(asked)
            for t, v in store.series("s", asked, 4, 9).get(e, [])
        ]
        assert list(zip(ent.tolist(), times.tolist(), values.tolist(), strict=True)) == expected
        assert expected[:3] == [(0, 5, 5.0), (1, 5, 5.0), (1, 5, -1.0)]  # ties: order applied
        empty = store.series_columns("s", ["Z"], 0, 100)
        assert [len(a) for a in empty] == [0, 0, 0]

    def test_ties_keep_the_order_applied(self, store: FeatureStore) -> None:
        store.apply([SeriesPoint("s", "A", 5, 2.0)], [], {})
        store.apply([SeriesPoint("s", "A", 5, 1.0)], [], {})
        assert store.series("s", ["A"], 0, 10) == {"A": [(5, 2.0), (5, 1.0)]}

    def test_attributes_in_force_strictly_before_a_time(self, store: FeatureStore) -> None:
        store.apply(
            [],
            [
                AttributeVersion("acc", "A", 100, {"kyc": "BASIC", "risk": "LOW"}),
                AttributeVersion("acc", "A", 200, {"kyc": None, "risk": "HIGH"}),
                AttributeVersion("acc", "A", 300, {"kyc": "ENHANCED", "risk": None}),
            ],
            {},
        )
        assert store.attributes("acc", ["A"], 100) == {}
        assert store.attributes("acc", ["A"], 101) == {"A": {"kyc": "BASIC", "risk": "LOW"}}
        assert store.attributes("acc", ["A"], 300) == {"A": {"kyc": "BASIC", "risk": "HIGH"}}
        assert store.attributes("acc", ["A", "Z"], 301) == {
            "A": {"kyc": "ENHANCED", "risk": "HIGH"}
        }
        versions = store.attribute_versions("acc", ["A"], 250)["A"]
        assert [v for v, _ in versions] == [100, 200] and versions[1][1]["kyc"] is None

    def test_attribute_state_answers_like_every_version(self, store: FeatureStore) -> None:
        """What scoring reads (Feast: its online store) gives the same state at every time in
        the window as the full history, also right after a later batch changed it."""
        store.apply(
            [],
            [
                AttributeVersion("acc", "A", 100, {"kyc": "BASIC", "risk": "LOW"}),
                AttributeVersion("acc", "A", 200, {"kyc": None, "risk": "HIGH"}),
                AttributeVersion("acc", "B", 150, {"kyc": "ENHANCED", "risk": None}),
            ],
            {},
        )

        def in_force(versions: list[tuple[int, dict[str, str | None]]], t: int) -> dict[str, str]:
            merged: dict[str, str] = {}
            for valid_from, values in versions:
                if valid_from < t:
                    merged.update({k: v for k, v in values.items() if v is not None})
            return merged

        def check(start: int, end: int) -> None:
            state = store.attribute_state("acc", ["A", "B", "Z"], start, end)
            assert "Z" not in state or state["Z"] == []
            for entity in ("A", "B"):
                full = store.attribute_versions("acc", [entity], end).get(entity, [])
                for t in (start, (start + end) // 2, end):
                    assert in_force(state.get(entity, []), t) == in_force(full, t), (entity, t)

        for start, end in ((50, 60), (150, 250), (201, 201), (1_000, 1_000), (120, 2_000)):
            check(start, end)
        assert store.attribute_state("acc", ["A"], 1_000, 1_000)["A"][-1][1] == {
            "kyc": "BASIC",
            "risk": "HIGH",
        }
        store.apply([], [AttributeVersion("acc", "A", 500, {"kyc": "ENHANCED", "risk": None})], {})
        assert in_force(store.attribute_state("acc", ["A"], 1_000, 1_000)["A"], 1_000) == {
            "kyc": "ENHANCED",
            "risk": "HIGH",
        }
        check(400, 600)
        check(1_000, 1_000)
        assert store.attribute_state("none", ["A"], 1_000, 1_000) in ({}, {"A": []})

    def test_apply_is_a_compare_and_set_on_expected_positions(self, store: FeatureStore) -> None:
        tp = TopicPartition("payments", 0)
        store.apply([SeriesPoint("s", "A", 1, 1.0)], [], {tp: 5}, {tp: 0})
        with pytest.raises(Conflict, match="another feed"):  # a second feed that read 0 too
            store.apply([SeriesPoint("s", "A", 1, 1.0)], [], {tp: 5}, {tp: 0})
        assert store.series("s", ["A"], 0, 10) == {"A": [(1, 1.0)]}
        store.apply([SeriesPoint("s", "A", 2, 2.0)], [], {tp: 9}, {tp: 5})
        assert store.positions() == {tp: 9}

    def test_positions_survive_a_reopen_with_their_data(
        self, store: FeatureStore, reopen: Reopen
    ) -> None:
        tp = TopicPartition("payments", 2)
        store.apply([SeriesPoint("s", "A", 1, 1.0)], [], {tp: 41})
        store = reopen(store)
        assert store.positions() == {tp: 41}
        assert store.series("s", ["A"], 0, 2) == {"A": [(1, 1.0)]}


class ModelRegistryContract:
    @pytest.fixture
    def registry(self) -> ModelRegistry:
        raise NotImplementedError

    def test_put_and_get_the_exact_bytes(self, registry: ModelRegistry) -> None:
        stored = registry.put("m", 1, b"\x00model-one", {"family": "x"})
        assert len(stored.sha256) == 64 and stored.size == 10
        assert registry.get("m", 1) == b"\x00model-one"
        registry.put("m", 1, b"\x00model-one", {"family": "x"})  # the same bytes again: fine
        with pytest.raises(Conflict, match="new version"):
            registry.put("m", 1, b"other", {})
        with pytest.raises(NotFound):
            registry.get("m", 2)
        registry.put("m", 2, b"two", {})
        assert [v.version for v in registry.versions("m")] == [1, 2]
        assert registry.versions("nothing") == []

    def test_aliases(self, registry: ModelRegistry) -> None:
        registry.put("m", 1, b"a", {})
        registry.put("m", 2, b"b", {})
        registry.set_alias("m", "champion", 1)
        registry.set_alias("m", "challenger", 2)
        registry.set_alias("m", "champion", 2)
        assert registry.aliases("m") == {"champion": 2, "challenger": 2}
        registry.set_alias("m", "challenger", None)
        assert registry.aliases("m") == {"champion": 2}
