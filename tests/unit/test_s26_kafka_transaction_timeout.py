"""``HUB_KAFKA_TRANSACTION_TIMEOUT_S``: the transaction timeout of the Kafka log's transactions
(``transaction()``), and so how long verify waits before it names a partition held back behind
another producer's open transaction (``held_back_after_ms``). Unset, the bound is what it was:
max(60 s, twice the delivery timeout) or the atomic appends' timeout, plus 5 s.

No broker: the log's constructor connects to nothing (an unreachable bootstrap server)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from adapters.kafka_log import KafkaEventLog
from core.errors import ConfigError, InvalidInput
from hub.settings import load_settings

NOWHERE = "127.0.0.1:1"


@contextmanager
def _log(**kw: Any) -> Iterator[KafkaEventLog]:
    log = KafkaEventLog(NOWHERE, **kw)
    try:
        yield log
    finally:
        log.close()


@pytest.mark.parametrize(
    ("kw", "bound_ms"),
    [
        ({}, 125_000),  # the default: twice the 60 s delivery timeout, + 5 s
        ({"delivery_timeout_s": 10.0}, 65_000),  # the 60 s floor
        ({"atomic_transaction_timeout_s": 300.0}, 305_000),  # the atomic appends' own
        ({"transaction_timeout_s": 15.0}, 20_000),
        ({"transaction_timeout_s": 2.0}, 15_000),  # the atomic appends' 10 s is longer
    ],
)
def test_the_held_back_bound_follows_the_transaction_timeouts(
    kw: dict[str, float], bound_ms: int
) -> None:
    with _log(**kw) as log:
        assert log.held_back_after_ms == bound_ms


@pytest.mark.parametrize("seconds", [0.5, 901.0])
def test_a_transaction_timeout_out_of_range_is_refused_naming_it(seconds: float) -> None:
    with pytest.raises(InvalidInput, match=r"transaction_timeout_s=.* is invalid: pass 1 to 900"):
        KafkaEventLog(NOWHERE, transaction_timeout_s=seconds)


def test_the_setting_reaches_the_log_and_is_checked() -> None:
    settings = load_settings(environ={"HUB_KAFKA_TRANSACTION_TIMEOUT_S": "15"})
    assert settings.kafka_transaction_timeout_s == 15.0
    assert load_settings(environ={}).kafka_transaction_timeout_s is None
    with pytest.raises(ConfigError, match="kafka_transaction_timeout_s"):
        load_settings(environ={"HUB_KAFKA_TRANSACTION_TIMEOUT_S": "0"})
