"""A compiled projection as a PyFlink job: run by the PyFlink virtualenv's interpreter, never
imported by the hub (``infra/flink.sh python``; the hub's lock file holds no apache-flink).

    <flink-venv>/bin/python projections/flink/job.py SPEC.json

``SPEC.json`` is what ``projections.flink.compile`` wrote (``JobSpec.to_json``): Flink settings,
the Avro decoders to register, the DDL statements, and the INSERTs, run as ONE statement set (one
Flink job). Standard library, fastavro and pyflink only: the file is all the job needs.

Values are Confluent wire format (magic 0, 4-byte schema id, Avro binary). A Python table
function decodes them: it fetches each writer schema once from the hub's Schema Registry HTTP API
(``GET /schemas/ids/{id}``, the Confluent API; credentials from ``HUB_FLINK_REGISTRY_AUTH``,
``KEY_ID:SECRET`` or a JSON object of them by registry URL, in the environment, never in the spec
file) and yields the fields the job
names, converted so that SQL can keep them exact: decimals as their plain text (cast to
``DECIMAL`` in SQL), timestamps as integer microseconds, enums as their symbol. A value that
does not decode yields no row (the embedded runner quarantines it; see the README's limits).

Exit codes: 0 when the job finished (bounded runs) or was cancelled; 1 with the reason on
stderr otherwise (Flink's own log is under ``pyflink/log`` of the virtualenv).
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_MILLI = timedelta(milliseconds=1)


def plain(value: Any) -> Any:
    """An Avro datum's value as the SQL side reads it (exact: no float anywhere)."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime):
        when = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return (when - _EPOCH) // _MICRO
    if isinstance(value, bytes):
        return None  # ciphertext of a PII field: jobs never read it
    return value


SEALED = "pii:v2:"


def seal(
    topic: str, schema_id: int, field: str, ciphertext: bytes, subject: str, tenant: str
) -> str:
    """A PII field's ciphertext as view text: the job has no key store and never sees the
    plaintext; the hub opens it when it reads the view (``projections.flink.sealed``), so an
    erased subject reads as erased there too. ``tenant`` is the record's (``ce_tenant``): the
    ciphertext's associated data binds it (base64, so any tenant name parses)."""
    text = base64.b64encode(ciphertext).decode()
    owner = base64.b64encode(tenant.encode()).decode()
    return f"{SEALED}{topic}:{schema_id}:{field}:{text}:{owner}:{subject}"


def registry_auth(url: str) -> str:
    """``KEY_ID:SECRET`` for the registry at ``url``: ``HUB_FLINK_REGISTRY_AUTH`` holds one, or a
    JSON object of them by registry URL (one job reading the topics of several hubs)."""
    raw = os.environ.get("HUB_FLINK_REGISTRY_AUTH", "")
    if raw.startswith("{"):
        return str(json.loads(raw).get(url, ""))
    return raw


class WireDecoder:
    """Confluent wire-format value -> the named fields (plus the writer's record name)."""

    def __init__(self, registry_url: str, fields: list[str]) -> None:
        self.registry_url = registry_url.rstrip("/")
        self.fields = fields
        self._schemas: dict[int, tuple[Any, str]] = {}
        self.subjects: dict[int, str | None] = {}  # schema id -> its data subject field

    def datum(self, value: bytes | None, topic: str, tenant: str) -> dict[str, Any] | None:
        """The value as fastavro decodes it (Decimal, datetime), PII ciphertext sealed
        (``seal``), or None when it does not decode (the embedded runner quarantines it)."""
        import fastavro

        if value is None or len(value) < 5 or value[0] != 0:
            return None
        schema_id = int.from_bytes(value[1:5], "big")
        schema, _ = self._schema(schema_id)
        try:
            datum = fastavro.schemaless_reader(io.BytesIO(value[5:]), schema, None)
        except Exception:  # fastavro raises many types on corrupt input
            return None
        if not isinstance(datum, dict):
            return None
        subject_field = self.subjects.get(schema_id)
        subject = "" if subject_field is None else str(datum.get(subject_field) or "")
        for k, v in datum.items():
            if isinstance(v, bytes):
                datum[k] = seal(topic, schema_id, k, v, subject, tenant)
        return datum

    def _schema(self, schema_id: int) -> tuple[Any, str]:
        import fastavro

        if schema_id not in self._schemas:
            request = urllib.request.Request(f"{self.registry_url}/schemas/ids/{schema_id}")
            auth = registry_auth(self.registry_url)
            if auth:
                token = base64.b64encode(auth.encode()).decode()
                request.add_header("Authorization", f"Basic {token}")
            with urllib.request.urlopen(request, timeout=30) as response:
                text = json.loads(response.read())["schema"]
            raw = json.loads(text)
            parsed = fastavro.parse_schema(raw)
            fields = raw.get("fields", []) if isinstance(raw, dict) else []
            self.subjects[schema_id] = next(
                (f["name"] for f in fields if f.get("hub.data_subject") is True), None
            )
            name = raw.get("name", "") if isinstance(raw, dict) else ""
            namespace = raw.get("namespace", "") if isinstance(raw, dict) else ""
            full = name if "." in name or not namespace else f"{namespace}.{name}"
            self._schemas[schema_id] = (parsed, full)
        return self._schemas[schema_id]

    def decode(self, value: bytes | None) -> tuple[Any, ...] | None:
        import fastavro

        if value is None or len(value) < 5 or value[0] != 0:
            return None
        schema, name = self._schema(int.from_bytes(value[1:5], "big"))
        try:
            datum = fastavro.schemaless_reader(io.BytesIO(value[5:]), schema, None)
        except Exception:  # fastavro raises many types on corrupt input
            return None
        if not isinstance(datum, dict):
            return None
        return (name, *(plain(datum.get(f)) for f in self.fields))


def _flink_type(name: str) -> Any:
    from pyflink.table import DataTypes

    types = {"STRING": DataTypes.STRING(), "BIGINT": DataTypes.BIGINT()}
    if name not in types:
        raise SystemExit(f"job spec names decoder type {name!r}; known: {', '.join(types)}")
    return types[name]


def register_decoder(t_env: Any, spec: dict[str, Any]) -> None:
    from pyflink.table.udf import TableFunction, udtf

    fields = [f for f, _ in spec["fields"]]
    url = spec["registry_url"]

    class Decode(TableFunction):  # type: ignore[misc]
        def open(self, function_context: Any) -> None:
            self.decoder = WireDecoder(url, fields)

        def eval(self, value: bytes | None) -> Any:
            row = self.decoder.decode(value)
            if row is not None:
                yield row

    result_types = [_flink_type("STRING")] + [_flink_type(t) for _, t in spec["fields"]]
    t_env.create_temporary_function(spec["function"], udtf(Decode(), result_types=result_types))


def _scale_of(type_: str) -> int | None:
    if type_.startswith("DECIMAL("):
        return int(type_.rstrip(")").split(",")[1])
    return None


def _result_type(type_: str) -> Any:
    from pyflink.table import DataTypes

    scale = _scale_of(type_)
    if scale is not None:
        return DataTypes.DECIMAL(38, scale)
    return _flink_type(type_)


def register_keys(t_env: Any, spec: dict[str, Any]) -> None:
    """An entity rule's key function (``module:function``, e.g. ``projections.folds:limit_key``)
    as a Python table function: the event decoded as the embedded runner decodes it, its key
    columns out (timestamps as integer microseconds), none for other event types."""
    import importlib

    from pyflink.table.udf import TableFunction, udtf

    module, function = spec["key"].split(":")
    url, topic, event_types = spec["registry_url"], spec["topic"], set(spec["event_types"])

    class Keys(TableFunction):  # type: ignore[misc]
        def open(self, function_context: Any) -> None:
            self.decoder = WireDecoder(url, [])
            self.key = getattr(importlib.import_module(module), function)
            self.event = importlib.import_module("core.projection").Event

        def eval(
            self, value: Any, tenant: str, event_type: str, partition: int, offset: int
        ) -> Any:
            if event_type not in event_types:
                return
            datum = self.decoder.datum(value, topic, tenant)
            if datum is None:
                return
            e = self.event(topic, partition, offset, 0, None, event_type, tenant, datum)
            yield tuple(plain(v) for v in self.key(e))

    result_types = [_flink_type(t) for _, t in spec["columns"]]
    t_env.create_temporary_function(spec["function"], udtf(Keys(), result_types=result_types))


def register_fold(t_env: Any, spec: dict[str, Any]) -> None:
    """An entity fold of the hub (``module:function``, e.g. ``projections.folds:fold_position``)
    as a Python aggregate function: it decodes each value with fastavro (Decimal, datetime: the
    embedded runner's types), applies the very same fold in arrival order (one key lives in one
    Kafka partition, read in offset order), and returns the row's columns plus its source range.
    The hub's checkout is on the workers' PYTHONPATH (``projections.flink.launch``)."""
    import base64 as b64
    import importlib
    import pickle
    from decimal import ROUND_HALF_EVEN, Context

    from pyflink.common import Row
    from pyflink.table import DataTypes
    from pyflink.table.udf import AggregateFunction, udaf

    columns: list[tuple[str, str]] = [tuple(c) for c in spec["columns"]]
    module, function = spec["fold"].split(":")
    url, topic, event_types = spec["registry_url"], spec["topic"], set(spec["event_types"])
    params = dict(spec.get("params", {}))

    class Fold(AggregateFunction):  # type: ignore[misc]
        def open(self, function_context: Any) -> None:
            self.decoder = WireDecoder(url, [])
            self.fold = getattr(importlib.import_module(module), function)
            self.ctx = importlib.import_module("core.projection").FoldContext(params=params)
            self.event = importlib.import_module("core.projection").Event

        def create_accumulator(self) -> Any:
            return Row("")

        def accumulate(
            self, acc: Any, value: Any, tenant: str, event_type: str, partition: int, offset: int
        ) -> None:
            if event_type not in event_types:
                return
            datum = self.decoder.datum(value, topic, tenant)
            if datum is None:  # the embedded runner quarantines it
                return
            state = pickle.loads(b64.b64decode(acc[0])) if acc[0] else (None, offset, offset, 0)
            row, first, last, count = state
            e = self.event(topic, partition, offset, 0, None, event_type, tenant, datum)
            row = self.fold(row, e, self.ctx)
            state = (row, min(first, offset), max(last, offset), count + 1)
            acc[0] = b64.b64encode(pickle.dumps(state)).decode()

        def get_value(self, acc: Any) -> Any:
            if not acc[0]:
                return None
            row, first, last, count = pickle.loads(b64.b64decode(acc[0]))
            out = []
            for name, type_ in columns:
                v = row.get(name)
                scale = _scale_of(type_)
                if scale is not None and v is not None:
                    v = Decimal(v).quantize(
                        Decimal(1).scaleb(-scale), ROUND_HALF_EVEN, Context(prec=80)
                    )
                out.append(v)
            return Row(*out, first, last, count)

        def get_accumulator_type(self) -> Any:
            return DataTypes.ROW([DataTypes.FIELD("s", DataTypes.STRING())])

        def get_result_type(self) -> Any:
            fields = [DataTypes.FIELD(n, _result_type(t)) for n, t in columns]
            fields += [
                DataTypes.FIELD(n, DataTypes.BIGINT())
                for n in ("src_first", "src_last", "src_events")
            ]
            return DataTypes.ROW(fields)

    t_env.create_temporary_function(spec["function"], udaf(Fold()))


def register_features(t_env: Any, spec: dict[str, Any]) -> None:
    """An ML feature view's functions (the module the spec names, on the workers' path):
    ``extract`` a table function per topic (a decoded record -> its facts and scored event),
    ``vector`` an aggregate per scored event (its facts -> the engine's vector, JSON)."""
    import importlib

    from pyflink.common import Row
    from pyflink.table import DataTypes
    from pyflink.table.udf import AggregateFunction, TableFunction, udaf, udtf

    name, module = spec["view"], spec["module"]
    if spec["kind"] == "extract":
        url, topic = spec["registry_url"], spec["topic"]

        class Extract(TableFunction):  # type: ignore[misc]
            def open(self, function_context: Any) -> None:
                self.decoder = WireDecoder(url, [])
                self.features = importlib.import_module(module)
                self.view = self.features.view_named(name)

            def eval(self, value: Any, event_type: str, tenant: str) -> Any:
                datum = self.decoder.datum(value, topic, tenant)
                yield from self.features.extract_rows(self.view, topic, datum, event_type, tenant)

        types = [DataTypes.STRING(), DataTypes.STRING(), DataTypes.STRING()]
        types += [DataTypes.BIGINT(), DataTypes.BIGINT(), DataTypes.STRING()]
        t_env.create_temporary_function(spec["function"], udtf(Extract(), result_types=types))
        return

    class Vector(AggregateFunction):  # type: ignore[misc]
        def open(self, function_context: Any) -> None:
            self.features = importlib.import_module(module)
            self.view = self.features.view_named(name)

        def create_accumulator(self) -> Any:
            return Row("", "[]")

        def accumulate(self, acc: Any, event: str, *fact: Any) -> None:
            acc[0] = event
            if fact[0] is not None:  # the event's own row carries no fact
                acc[1] = json.dumps([*json.loads(acc[1]), list(fact)])

        def get_value(self, acc: Any) -> Any:
            if not acc[0]:
                return None
            facts = [tuple(f) for f in json.loads(acc[1])]
            got = self.features.vector_of(self.view, json.loads(acc[0]), facts)
            return json.dumps(got, sort_keys=True)

        def get_accumulator_type(self) -> Any:
            return DataTypes.ROW(
                [DataTypes.FIELD("e", DataTypes.STRING()), DataTypes.FIELD("f", DataTypes.STRING())]
            )

        def get_result_type(self) -> Any:
            return DataTypes.STRING()

    t_env.create_temporary_function(spec["function"], udaf(Vector()))


def register_row_mac(t_env: Any) -> None:
    """``hub_row_mac(name, v1, v2, ...)``: the MAC of a result row (``projections.flink.rowmac``,
    on the workers' path) under the key the hub put in the environment (never the spec file:
    whoever reads the spec could then forge rows). No key: the job refuses to start, since the
    hub would refuse every row it wrote."""
    from pyflink.table import DataTypes
    from pyflink.table.udf import ScalarFunction, udf

    from projections.flink import rowmac

    def row_key() -> bytes:
        try:
            key = bytes.fromhex(os.environ.get(rowmac.ROW_KEY_ENV, ""))
        except ValueError:
            key = b""
        if len(key) < 32:
            raise SystemExit(
                f"{rowmac.ROW_KEY_ENV} is unset or not 32+ bytes of hex: the job MACs its result "
                "rows under the hub's key (the hub's launcher sets it); the hub loads none without."
            )
        return key

    row_key()  # refused before the job starts, not by every worker

    class RowMac(ScalarFunction):  # type: ignore[misc]
        def open(self, function_context: Any) -> None:
            # read by the worker from its environment: the function is pickled into the job
            # graph, which must not carry the key
            self.key = row_key()

        def eval(self, name: str, *values: Any) -> str:
            return rowmac.row_mac(self.key, name, values)

    t_env.create_temporary_function(rowmac.FUNCTION, udf(RowMac(), result_type=DataTypes.STRING()))


def epoch_ms(ts: datetime) -> int:
    """A Kafka record's timestamp (``TIMESTAMP_LTZ(3)`` metadata) as epoch milliseconds. PyFlink
    (2.x, coder_impl ``LocalZonedTimestampCoderImpl``) hands it over as the UTC wall clock
    labelled with the session's time zone without shifting it (seen: epoch ms 1700000000123 in
    Asia/Kolkata reads 22:13:20.123+05:30), so the wall clock is read as UTC whatever the label.
    Should PyFlink start shifting it, every tenant MAC fails: rows read as 'default' (closed),
    and the differential tests show it."""
    return (ts.replace(tzinfo=UTC) - _EPOCH) // _MILLI


def register_tenant(t_env: Any, prefixes: list[str]) -> None:
    """``hub_tenant(headers, record_key, value, src_partition, src_ts, topic, prefix,
    src_offset, legacy)``: a source record's ``ce_tenant`` only when the tenant MAC of the hub
    owning the namespace ``prefix`` verifies on it, else 'default' (``core.tenant_mac``, on the
    workers' path), under the keys the hub put in the environment (never the spec file), each
    bound to its namespace (``namespace_key``; the hub's key itself only for a record below the
    namespace's marker: ``legacy``, ``compile.tenant_args``). A namespace of ``prefixes``
    without a key: the job refuses to start, since otherwise its rows would silently all read
    as tenant 'default'."""
    from pyflink.table import DataTypes
    from pyflink.table.udf import ScalarFunction, udf

    from core import tenant_mac

    def tenant_keys() -> dict[str, bytes]:
        keys = tenant_mac.parse_keys(os.environ.get(tenant_mac.KEY_ENV, ""), prefixes)
        missing = [p for p in prefixes if p not in keys]
        if missing:
            raise SystemExit(
                f"{tenant_mac.KEY_ENV} holds no tenant MAC key (32+ bytes of hex) for the "
                f"namespace(s) {missing}: the job reads each record's tenant only where the "
                "hub's tenant MAC verifies (the hub's launcher sets it); without it every record "
                "would read as tenant 'default'."
            )
        return keys

    tenant_keys()  # refused before the job starts, not by every worker

    class Tenant(ScalarFunction):  # type: ignore[misc]
        def open(self, function_context: Any) -> None:
            # read by the worker from its environment: the function is pickled into the job
            # graph, which must not carry the keys
            self.tenant = tenant_mac.JobTenant(tenant_keys())

        def eval(
            self,
            headers: dict[str, bytes | None] | None,
            record_key: bytes | None,
            value: bytes | None,
            partition: int | None,
            ts: datetime | None,
            topic: str,
            prefix: str,
            offset: int | None,
            legacy: str | None,
        ) -> str:
            if partition is None or ts is None:
                return tenant_mac.DEFAULT_TENANT
            ms = epoch_ms(ts)
            return self.tenant(
                headers, record_key, value, partition, ms, topic, prefix, offset, legacy
            )

    t_env.create_temporary_function(
        tenant_mac.FUNCTION, udf(Tenant(), result_type=DataTypes.STRING())
    )


def main(path: str) -> int:
    from pyflink.table import EnvironmentSettings, TableEnvironment

    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    t_env = TableEnvironment.create(EnvironmentSettings.in_streaming_mode())
    config = t_env.get_config()
    for key, value in spec["config"].items():
        config.set(key, str(value))
    for decoder in spec["decoders"]:
        register_decoder(t_env, decoder)
    for keys in spec.get("keys", []):
        register_keys(t_env, keys)
    for fold in spec.get("folds", []):
        register_fold(t_env, fold)
    for feature in spec.get("features", []):
        register_features(t_env, feature)
    if spec.get("row_macs"):
        register_row_mac(t_env)
    if spec.get("tenant_prefixes"):
        register_tenant(t_env, spec["tenant_prefixes"])
    for name, cls in spec.get("java_functions", []):
        # the hub's own JVM functions (projections/flink/jvm.py), from the jar on pipeline.jars
        t_env.create_java_temporary_function(name, cls)
    for statement in spec["statements"]:
        t_env.execute_sql(statement)
    statements = t_env.create_statement_set()
    for insert in spec["inserts"]:
        statements.add_insert_sql(insert)
    result = statements.execute()
    client = result.get_job_client()
    job_id = str(client.get_job_id()) if client is not None else ""
    print(json.dumps({"event": "submitted", "job_id": job_id, "at": time.time()}), flush=True)
    result.wait()
    print(json.dumps({"event": "finished", "job_id": job_id, "at": time.time()}), flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: job.py SPEC.json", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
