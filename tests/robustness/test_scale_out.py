"""Scale-out: several worker processes sharing PostgreSQL, as docs/deploy.md describes.

Two servers on loopback share one PostgreSQL database: one `serve --workers 2` (uvicorn's multi-process
mode) and one single-worker `serve`, three worker processes in all. Clients authenticate with signed JWTs.
A token used at one server is refused when replayed at the other; concurrent calls to both leave one
gap-free audit chain that verifies, with a record of every answered call.

Needs IMATINIB_CDS_TEST_POSTGRES_URL (`.ci/run` sets it); the tables live in a schema of their own.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from cds.audit import AuditStore
from cds.service.auth_failures import AuthFailureLog
from tests.conftest import postgres_schema
from tests.robustness.conftest import ServerProcess, examples, service_path

SCHEMA = "robustness_scale_out"
ISS = "https://ehr.example.org/cds-client"
KID = "scale-out-key"
PUBLIC = "https://cds.hospital.example"  # both servers stand behind one proxy: one audience for all workers
CALLERS, PER_CALLER = 8, 5  # concurrent clients, half at each server


@pytest.fixture()
def postgres_url(tmp_path: Path) -> Iterator[str]:
    with postgres_schema(SCHEMA, "postgresql", tmp_path) as url:
        yield url


def bearer(key: ec.EllipticCurvePrivateKey, audience: str) -> dict[str, str]:
    now = int(time.time())
    claims = {"iss": ISS, "aud": audience, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
    return {"Authorization": "Bearer " + jwt.encode(claims, key, algorithm="ES384", headers={"kid": KID})}


def test_workers_sharing_postgres_reject_replays_and_keep_one_chain(tmp_path: Path, postgres_url: str) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [dict(public, kid=KID, alg="ES384", use="sig")]}))
    config = tmp_path / "config.yaml"
    config.write_text(f"trusted_clients:\n  - iss: {ISS}\n    jwks_file: jwks.json\n")
    # no tables yet: three workers start together and create them (under an advisory lock) as they come up
    a = ServerProcess(tmp_path, postgres_url, workers=2, config_file=config, public_url=PUBLIC)
    b = ServerProcess(tmp_path, postgres_url, workers=1, config_file=config, public_url=PUBLIC)
    bodies = examples()
    answered: list[str] = []
    problems: list[str] = []
    lock = threading.Lock()

    def call(client: httpx.Client, server: ServerProcess, body: dict[str, object], headers: dict[str, str]) -> int:
        return client.post(server.base + service_path(str(body["hook"])), json=body, headers=headers).status_code

    def caller(n: int) -> None:
        server = (a, b)[n % 2]
        with httpx.Client(timeout=60) as client:
            for i in range(PER_CALLER):
                body = dict(bodies[(n * PER_CALLER + i) % len(bodies)], hookInstance=str(uuid.uuid4()))
                status = call(client, server, body, bearer(key, PUBLIC + service_path(str(body["hook"]))))
                with lock:
                    if status == 200:
                        answered.append(str(body["hookInstance"]))
                    else:
                        problems.append(f"{server.base}: {status}")

    try:
        a.start()
        b.start()
        with httpx.Client(timeout=60) as client:
            a.wait_healthy(client)
            b.wait_healthy(client)
            body = dict(bodies[0], hookInstance=str(uuid.uuid4()))
            at_a, at_b = (
                bearer(key, PUBLIC + service_path(body["hook"])),
                bearer(key, PUBLIC + service_path(body["hook"])),
            )
            assert call(client, a, body, at_a) == 200
            assert call(client, b, dict(body, hookInstance=str(uuid.uuid4())), at_b) == 200
        replays = []
        for _ in range(3):  # a fresh connection each: the kernel spreads accepts over a's two workers
            for server, token in ((b, at_a), (a, at_a), (a, at_b), (b, at_b)):
                with httpx.Client(timeout=60) as fresh:
                    replays.append(call(fresh, server, body, token))
        assert replays == [401] * 12
        threads = [threading.Thread(target=caller, args=(n,)) for n in range(CALLERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
    finally:
        a.stop()
        b.stop()

    assert not problems, problems[:5]
    assert len(answered) == CALLERS * PER_CALLER
    store = AuditStore(postgres_url)
    try:
        assert all(store.decision(h) is not None for h in answered)
        report = store.verify()
        assert report.ok, report
        seqs = [e["seq"] for e in store.export()]
        assert seqs == list(range(1, len(seqs) + 1))  # one gap-free chain
        assert len(seqs) == CALLERS * PER_CALLER + 2  # the load and the two first calls
        # the refused replays are counted in aggregate (issue 15), not one chain entry each
        rows = AuthFailureLog(store.engine, flush_s=0).rows()
        assert sum(int(str(r["count"])) for r in rows if r["reason"] == "replay") == 12, rows
    finally:
        store.dispose()
