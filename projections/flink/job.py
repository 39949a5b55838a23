"""A compiled projection as a PyFlink job: run by the PyFlink virtualenv's interpreter, never
imported by the hub (``infra/flink.sh python``; the hub's lock file holds no apache-flink).

    <flink-venv>/bin/python projections/flink/job.py SPEC.json

``SPEC.json`` is what ``projections.flink.compile`` wrote (``JobSpec.to_json``): Flink settings,
the Avro decoders to register, the DDL statements, and the INSERTs, run as ONE statement set (one
Flink job). Standard library, fastavro and pyflink only: the file is all the job needs.

Values are Confluent wire format (magic 0, 4-byte schema id, Avro binary). A Python table
function decodes them: it fetches each writer schema once from the hub's Schema Registry HTTP API
(``GET /schemas/ids/{id}``, the Confluent API; credentials from ``HUB_FLINK_REGISTRY_AUTH``,
``KEY_ID:SECRET``, in the environment, never in the spec file) and yields the fields the job
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
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


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


class WireDecoder:
    """Confluent wire-format value -> the named fields (plus the writer's record name)."""

    def __init__(self, registry_url: str, fields: list[str]) -> None:
        self.registry_url = registry_url.rstrip("/")
        self.fields = fields
        self._schemas: dict[int, tuple[Any, str]] = {}

    def _schema(self, schema_id: int) -> tuple[Any, str]:
        import fastavro

        if schema_id not in self._schemas:
            request = urllib.request.Request(f"{self.registry_url}/schemas/ids/{schema_id}")
            auth = os.environ.get("HUB_FLINK_REGISTRY_AUTH", "")
            if auth:
                token = base64.b64encode(auth.encode()).decode()
                request.add_header("Authorization", f"Basic {token}")
            with urllib.request.urlopen(request, timeout=30) as response:
                text = json.loads(response.read())["schema"]
            raw = json.loads(text)
            parsed = fastavro.parse_schema(raw)
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
    for statement in spec["statements"]:
        t_env.execute_sql(statement)
    statements = t_env.create_statement_set()
    for insert in spec["inserts"]:
        statements.add_insert_sql(insert)
    result = statements.execute()
    client = result.get_job_client()
    job_id = str(client.get_job_id()) if client is not None else ""
    print(json.dumps({"event": "submitted", "job_id": job_id}), flush=True)
    result.wait()
    print(json.dumps({"event": "finished", "job_id": job_id}), flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: job.py SPEC.json", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
