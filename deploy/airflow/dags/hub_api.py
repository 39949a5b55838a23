"""The hub's HTTP API as the batch DAGs use it (standard library only).

The DAGs run in Airflow's own environment, which does not install the hub: every task calls the
hub's API with the API key of a person responsible for the batch jobs (``hub keys create --role
compliance_officer --owner batch-ops``), so each call is authorised by the policy engine and
recorded on the ledger like any other.

Settings (environment of the Airflow workers):
  HUB_URL            the API, e.g. http://hub.hub.svc:8080 (default http://127.0.0.1:8080)
  HUB_API_KEY_FILE   a file holding KEY_ID:SECRET (required; mount it from Vault)
  HUB_ML_API_KEY_FILE  the key of the ML retraining DAG (role ml_engineer, enrolled: ``hub keys
                     create --role ml_engineer --owner ml-ops`` prints a token, ``hub enrol
                     --token-file TOKEN_FILE --out FILE`` redeems it); the batch key does not
                     train models
  HUB_BATCH_OUTPUT   where packs and reports are written (default /var/lib/hub-batch)
  HUB_VERIFY_SCRIPT  the hub's audit/verify.py (stdlib + cryptography), used to check each
                     evidence pack independently of the hub that produced it
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

TIMEOUT_S = 600.0
# A 503 ``body_budget_full`` (the server's HUB_MAX_REQUEST_BYTES_IN_FLIGHT) is answered before
# any of the body is read, so nothing of the request ran and sending it again cannot do it
# twice. It is sent again after the answer's Retry-After (at least the backoff, which doubles
# from BUDGET_BACKOFF_S), at most BUDGET_ATTEMPTS times in all, never waiting over
# BUDGET_MAX_WAIT_S at once. Any other 503 may follow work done (a write that may have been
# stored): not retried here.
BUDGET_ATTEMPTS = 6
BUDGET_BACKOFF_S = 0.5
BUDGET_MAX_WAIT_S = 30.0


class HubCallFailed(RuntimeError):
    """The hub answered an error (its reason and message are in the text), or was not reached."""


def base_url() -> str:
    return os.environ.get("HUB_URL", "http://127.0.0.1:8080").rstrip("/")


def output_dir(*parts: str) -> Path:
    path = Path(os.environ.get("HUB_BATCH_OUTPUT", "/var/lib/hub-batch"), *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _authorization(key_env: str) -> str:
    key_file = os.environ.get(key_env)
    if not key_file:
        raise HubCallFailed(
            f"{key_env} is not set: point it at a file holding the API key KEY_ID:SECRET."
        )
    try:
        key = Path(key_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise HubCallFailed(f"{key_env}={key_file} cannot be read: {exc}.") from exc
    return f"Bearer {key}"


def call(
    method: str,
    path: str,
    *,
    query: dict[str, str] | None = None,
    body: dict[str, Any] | None = None,
    raw: bool = False,
    key_env: str = "HUB_API_KEY_FILE",
) -> Any:
    """One request with the key in the file ``$key_env`` names; the JSON answer (or bytes with
    ``raw``). Errors raise HubCallFailed."""
    url = base_url() + path + ("?" + urllib.parse.urlencode(query) if query else "")
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", _authorization(key_env))
    request.add_header("X-Request-Id", os.environ.get("AIRFLOW_CTX_DAG_RUN_ID", "airflow"))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    backoff = BUDGET_BACKOFF_S
    for attempt in range(1, BUDGET_ATTEMPTS + 1):
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                payload = response.read()
            break
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", "replace")[:2000]
            if exc.code == 503 and _reason(text) == "body_budget_full":
                if attempt < BUDGET_ATTEMPTS:
                    time.sleep(min(BUDGET_MAX_WAIT_S, max(backoff, _retry_after(exc))))
                    backoff *= 2
                    continue
                raise HubCallFailed(
                    f"{method} {path} answered 503 body_budget_full {BUDGET_ATTEMPTS} times: the "
                    f"hub is holding too many request bodies (HUB_MAX_REQUEST_BYTES_IN_FLIGHT); "
                    f"nothing of the request ran, run the task again later: {text}"
                ) from exc
            raise HubCallFailed(f"{method} {path} answered {exc.code}: {text}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise HubCallFailed(f"{method} {url} failed: {exc}; is HUB_URL right?") from exc
    return payload if raw else json.loads(payload)


def _reason(text: str) -> str | None:
    """The ``reason`` of a hub error answer, None for any other text."""
    try:
        body = json.loads(text)
    except ValueError:
        return None
    reason = body.get("reason") if isinstance(body, dict) else None
    return reason if isinstance(reason, str) else None


def _retry_after(exc: urllib.error.HTTPError) -> float:
    """Seconds the answer's ``Retry-After`` asks for (0 when absent or not a number of seconds:
    the HTTP-date form is not sent by the hub)."""
    value = (exc.headers.get("Retry-After") or "").strip() if exc.headers else ""
    return float(value) if value.isdigit() else 0.0


def verify_pack(pack: Path, public_key: Path) -> str:
    """``audit/verify.py bundle PACK --public-key KEY`` (the stand-alone verifier: evidence packs
    and signed reports); its output, or HubCallFailed with it when the pack does not verify."""
    import subprocess
    import sys

    script = os.environ.get("HUB_VERIFY_SCRIPT") or str(
        Path(__file__).resolve().parents[3] / "audit" / "verify.py"
    )
    done = subprocess.run(
        [sys.executable, script, "bundle", str(pack), "--public-key", str(public_key)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    print(done.stdout)
    if done.returncode != 0:
        raise HubCallFailed(f"{pack} does not verify: {done.stdout}{done.stderr}")
    return done.stdout


def public_key(folder: Path) -> Path:
    """The ledger's public key (GET /v1/ledger/public-key) written to ``folder/ledger.pub``."""
    key = folder / "ledger.pub"
    key.write_bytes(call("GET", "/v1/ledger/public-key", raw=True))
    return key
