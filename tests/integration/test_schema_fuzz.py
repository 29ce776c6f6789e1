"""Schemathesis fuzzes every operation of the OpenAPI schema against a live uvicorn server.

The server runs embedded (scratch SQLite file seeded with seed_demo, no Redis) and is called
as a customer, a provider and ops in turn, with valid and invalid data. Every response must
be no 5xx, have a documented status code and content type, and a body matching the schema.
Bounded and deterministic: a few examples per operation and mode, derandomized generation.
Jobs booked before fuzzing give the `{id}` routes something real to act on besides the
random ids that only find 404s: one offered straight to the provider, who is fuzzed first
(accepting, chatting, starting it...), and one the customer can cancel.

A second test runs schemathesis's stateful phase: sequences of calls that follow the schema's
links (inferred from the responses: a booking's `id` feeds accept, cancel, messages, review…),
each role on jobs booked during the sequence itself.
"""
import os
import subprocess
import sys

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyStrategyDefinition
from hypothesis.stateful import initialize
from schemathesis.checks import not_a_server_error
from schemathesis.generation.stateful.state_machine import StepOutput
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
EXAMPLES_PER_MODE = int(os.environ.get("SCHEMA_FUZZ_EXAMPLES", "20"))
# Stateful: this many call sequences per role, each up to STATEFUL_STEPS calls after its booking.
STATEFUL_SCENARIOS = int(os.environ.get("SCHEMA_FUZZ_SCENARIOS", "40"))
STATEFUL_STEPS = 8
STATEFUL_ATTEMPTS = 3
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
        booking = {"category": category["id"], "address": "Connaught Place", "latitude": 28.6315,
                   "longitude": 77.2167, "item_ids": [category["items"][0]["id"]], "provider": provider["id"]}
        yield {"base": base, "tokens": tokens, "job_ids": job_ids, "log": tmp / "server.log", "booking": booking}
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


def _workflow(schema, *, base, token, booker_token, booking, seen: list):
    """The schema's state machine, calling as one role, each sequence starting from a real booking
    (offered straight to provider1), so the links from `POST /services/jobs/` have a job to follow."""
    workflow = schema.as_state_machine()
    book_operation = schema["/services/jobs/"]["POST"]

    class Workflow(workflow):
        @initialize(target=workflow.bundles["POST /services/jobs/ -> 201"])
        def booked(self):
            case = book_operation.Case(body=booking, media_type="application/json")
            response = case.call(base_url=base, headers={"Authorization": f"Token {booker_token}"}, timeout=30)
            assert response.status_code == 201, response.text
            # The schema's own steps look their parents up here.
            self.recorder.record_case(case=case)
            self.recorder.record_response(case_id=case.id, response=response)
            return StepOutput(response, case)

        def get_call_kwargs(self, case):
            return {"base_url": base, "headers": {"Authorization": f"Token {token}"}, "timeout": 30}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            try:
                case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)
            except BaseException as exc:
                # Kept here too: replaying a sequence against a server whose state moved on can draw
                # differently, and Hypothesis then reports that instead of the failure itself.
                seen.append(f"{case.operation.label}: {exc}")
                raise

    return Workflow


def test_call_sequences_along_the_schema_links_answer_as_documented_for_every_role(fuzz_server):
    base = fuzz_server["base"]
    schema = schemathesis.openapi.from_url(f"{base}/api/schema/?format=json")
    # Ending tokens mid-sequence would only turn the rest of it into 401s; the first test covers them.
    schema = schema.exclude(path_regex=r"^/(auth/(logout|password|tokens)|ops/tokens)/").exclude(
        method="GET", path="/services/jobs/{id}/invoice/"
    )
    customer_token = _call(base, "/auth/login/", body={"username": "customer1", "password": PASSWORD})["token"]
    failures = []
    for role in ROLES:
        token = _call(base, "/auth/login/", body={"username": role, "password": PASSWORD})["token"]
        for _attempt in range(STATEFUL_ATTEMPTS):
            seen: list[str] = []
            workflow = _workflow(schema, base=base, token=token, booker_token=customer_token,
                                 booking=fuzz_server["booking"], seen=seen)
            try:
                workflow.run(settings=settings(
                    max_examples=STATEFUL_SCENARIOS, stateful_step_count=STATEFUL_STEPS, deadline=None,
                    database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck),
                ))
            except FlakyStrategyDefinition:
                if seen:
                    failures.append(f"[{role}] {seen[0]}")
                    break
                # No check failed: the server's state moved between two draws of one sequence
                # (Hypothesis replays prefixes), which says nothing about the API. Run it again.
                continue
            except (Exception, BaseExceptionGroup) as exc:  # report every role's failure
                failures.append(f"[{role}] {seen[0] if seen else exc}")
            break
        else:
            failures.append(f"[{role}] no complete stateful run in {STATEFUL_ATTEMPTS} attempts")
    assert not failures, "\n\n".join(failures) + "\n\nserver log:\n" + fuzz_server["log"].read_text()[-5000:]
