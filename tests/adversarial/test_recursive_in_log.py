"""Values of a recursive schema already in the log (s15 red team, third pass).

The registry refuses recursive types now and ingest refuses wire values naming one, but a schema
registered before that refusal stays in ``_schemas``, and records written with it (before, or
straight to the log) stay stored. fastavro's compiled reader recursed through such a value and
killed the process with SIGSEGV: the hub's reader (``EventReader``: GET events, exports), the
projections' decoder and every other ``serde.decode`` caller (ledger re-decode, rules, stats).
Now they refuse the value with ``recursive_schema``, and a hub whose registry holds such a schema
still starts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.adversarial.test_ingress_s15 import NODE

_SCRIPT = """
import json, struct, sys
from pathlib import Path
import registry.service
from core.ports.eventlog import Record
from hub.bootstrap import bootstrap
from hub.settings import load_settings

data = Path(sys.argv[1])
h = bootstrap(load_settings(environ={}, data_dir=data))
h.log.create_topic("chain", 1, {"hub.subject.strategy": "topic"})
registry.service.refuse_recursive = lambda parsed: None  # registered before the refusal
sid = h.registry.register("chain-value", sys.argv[2]).id
deep = b"\\x00" + struct.pack(">I", sid) + b"\\x00\\x02" * 20000 + b"\\x00\\x00"
h.log.append("chain", [Record(key=b"k", value=deep)])  # stored before the fix
h.close()

h = bootstrap(load_settings(environ={}, data_dir=data))  # start-up with that registry
out = {}
(rec,) = h.log.read("chain", 0, 0, 10)
d = h.reader.decode(rec)  # GET events and exports answer a record's decode error in place
out["reader"] = [d["value"], d.get("error")]
from projections.decode import Decoder, Poison
try:
    Decoder(h.registry).decode(rec)
    out["projection"] = "decoded"
except Poison as exc:
    out["projection"] = [exc.code, exc.reason]
out["batch"] = Decoder(h.registry).decode_batch([rec])
print(json.dumps(out))
h.close()
"""


def test_stored_values_of_a_recursive_schema_are_refused_not_decoded(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path / "data"), json.dumps(NODE)],
        capture_output=True,
        timeout=120,
        cwd=Path(__file__).parents[2],
    )
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    out = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert out["reader"][0] is None, out
    assert "type 'Node' contains itself" in out["reader"][1], out
    assert out["projection"][0] == "recursive_schema", out
    assert out["batch"] is None  # the column decoder declines; the record path quarantines
