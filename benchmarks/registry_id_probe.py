"""What a schema-id probe costs a tenant's key: ``GET /schemas/ids/{id}`` of an unknown id, of
another tenant's id and of the tenant's own, through the hub's app in-process (embedded
footprint, the fast path first, as a serializer calls it), in CPU seconds of this process.

Session 21 made an unknown id ask (and record) the same decision as another tenant's id, so
that the decision log no longer tells them apart: this measures what that adds. Run it from
a source tree (the first ``sys.path`` entry wins), alternating an old tree and the new one:
``cd /tmp/old && python -m benchmarks.registry_id_probe`` and the same in the checkout.

Run: ``.venv/bin/python -m benchmarks.registry_id_probe --requests 300``
"""

from __future__ import annotations

import argparse
import base64
import json
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.bootstrap import bootstrap
from hub.settings import load_settings


def _basic(token: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(token.encode()).decode()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=300)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        hub = bootstrap(load_settings(environ={}, data_dir=Path(tmp) / "d"))
        try:
            c = TestClient(create_app(hub), raise_server_exceptions=False)
            admin = _basic(hub.keys.create(["admin"], principal="root").token)
            acme = _basic(hub.keys.create(["publisher"], principal="ann", tenant="acme").token)
            globex = _basic(hub.keys.create(["publisher"], principal="gus", tenant="globex").token)
            body = {"name": "moves", "partitions": 1, "tenant": "acme"}
            assert c.post("/v1/topics", json=body, headers=admin).status_code == 201
            schema = {"type": "record", "name": "M", "fields": [{"name": "a", "type": "string"}]}
            r = c.post(
                "/subjects/moves-value/versions", json={"schema": json.dumps(schema)}, headers=acme
            )
            foreign = r.json()["id"]
            r = c.post(
                "/subjects/com.globex.Own/versions",
                json={"schema": json.dumps({**schema, "name": "Own"})},
                headers=globex,
            )
            own = r.json()["id"]
            cases = {"unknown": foreign + 100_000, "foreign": foreign, "own": own}
            for name, schema_id in cases.items():
                c.get(f"/schemas/ids/{schema_id}", headers=globex)  # warm
                start = time.process_time()
                for _ in range(args.requests):
                    c.get(f"/schemas/ids/{schema_id}", headers=globex)
                cpu = time.process_time() - start
                print(f"{name:8s} {cpu / args.requests * 1e3:.3f} ms CPU per request")
        finally:
            hub.close()


if __name__ == "__main__":
    main()
