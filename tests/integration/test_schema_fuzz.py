"""Schemathesis fuzzes every operation of the OpenAPI schema against a live uvicorn server.

The server runs embedded (scratch SQLite file seeded with seed_demo, no Redis) and is called
as a customer, a provider and ops in turn, with valid and invalid data. Every response must
be no 5xx, have a documented status code and content type, and a body matching the schema.
Bounded and deterministic: a few examples per operation and mode, derandomized generation.
Jobs booked before fuzzing give the `{id}` routes something real to act on besides the
random ids that only find 404s: one offered straight to the provider, who is fuzzed first
(accepting, chatting, starting it...), and one the customer can cancel.
"""
import os
import subprocess
import sys

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bench.harness import throttle_env
from tests.integration.cluster import free_port, stop_process, wait_until_listening
from tests.integration.conftest import ROOT
from tests.integration.test_embedded_server import _call

PASSWORD = "demo-pass-123"
ROLES = ("provider1", "customer1", "ops")  # the provider first, before the customer cancels their jobs
EXAMPLES_PER_MODE = 10
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Only what cannot be fuzzed meaningfully is left out, each with its reason.
EXCLUDED = {
    # The 200 answer is a binary PDF, whose bytes the schema cannot describe; its errors are
    # the same JSON as every other `{id}` route's, and tests/api/test_invoice_api.py reads the PDF.
    ("GET", "/services/jobs/{id}/invoice/"),
}


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory):
    """A uvicorn process on a seeded scratch SQLite file; yields its base URL, each role's token and job id."""
    tmp = tmp_path_factory.mktemp("fuzz")
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "CI")},
        "DATABASE_URL": f"sqlite:///{tmp / 'db.sqlite3'}",
        "MATCHING_LOCATION_MAX_AGE_S": "0",
        "LOG_LEVEL": "WARNING",
        # The fuzzer is one client sending thousands of requests: the abuse limits are tested elsewhere.
        **throttle_env(),
    }
    for command in (["migrate", "--noinput"], ["seed_demo", "--providers", "20"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True)
    port = free_port()
    log = open(tmp / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_listening(port, server, tmp / "server.log")
        tokens = {role: _call(base, "/auth/login/", body={"username": role, "password": PASSWORD})["token"]
                  for role in ROLES}
        provider = _call(base, "/providers/me/", tokens["provider1"])
        categories = {c["id"]: c for c in _call(base, "/services/categories/")}
        category = categories[provider["categories"][0]["id"]]

        def book(**fields):
            body = {"category": category["id"], "address": "Connaught Place", "latitude": 28.6315,
                    "longitude": 77.2167, "item_ids": [category["items"][0]["id"]], **fields}
            return _call(base, "/services/jobs/", tokens["customer1"], body)["id"]

        offered, booked = book(provider=provider["id"]), book()
        job_ids = {"provider1": offered, "customer1": booked, "ops": offered}
        yield {"base": base, "tokens": tokens, "job_ids": job_ids, "log": tmp / "server.log"}
    finally:
        stop_process(server)
        log.close()


def _operations(schema):
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) not in EXCLUDED:
            yield operation


def _strategy(operation, job_id):
    modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    strategies = [operation.as_strategy(generation_mode=mode) for mode in modes]
    if "{id}" in operation.path:
        strategies.append(operation.as_strategy(path_parameters={"id": job_id}))
    return st.one_of(strategies)


def _fuzz(operation, *, strategy, base, headers, session) -> str | None:
    """Run the operation's examples; return the first failure's report, or None."""

    @settings(
        max_examples=EXAMPLES_PER_MODE * 3,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: the report shows the failing request
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case):
        case.call_and_validate(base_url=base, headers=headers, session=session, checks=CHECKS, timeout=30)

    try:
        run()
    except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - report every failing operation, not the first
        return f"{operation.label}: {exc}"
    return None


def test_every_operation_answers_as_documented_for_every_role(fuzz_server):
    base = fuzz_server["base"]
    schema = schemathesis.openapi.from_url(f"{base}/api/schema/?format=json")
    failures = []
    with requests.Session() as session:
        for role in fuzz_server["tokens"]:
            for operation in _operations(schema):
                # A fresh login per operation: logout, token revocation and password change end the
                # token they are sent with (or another's), which must not starve the next operation.
                token = _call(base, "/auth/login/", body={"username": role, "password": PASSWORD})["token"]
                failure = _fuzz(
                    operation,
                    strategy=_strategy(operation, fuzz_server["job_ids"][role]),
                    base=base,
                    headers={"Authorization": f"Token {token}"},
                    session=session,
                )
                if failure:
                    failures.append(f"[{role}] {failure}")
    assert not failures, "\n\n".join(failures) + "\n\nserver log:\n" + fuzz_server["log"].read_text()[-5000:]
