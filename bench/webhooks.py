"""Webhook deliveries per second through the real worker to a loopback receiver, against plain posts in the same run.

    python -m bench.webhooks            # writes the webhooks section of docs/benchmarks.md
    python -m bench.webhooks --quick    # fewer deliveries, prints only

A private PostgreSQL and Redis (bench.harness), migrated, and the Procfile's `webhooks` line
(one Celery worker, WEBHOOKS_CONCURRENCY threads, 8 by default) on them; a `Receiver` on
loopback answering 200 at once. This process writes N events in one transaction, spread over
J jobs, to one subscribed endpoint, and times from just before the commit until the receiver
holds all N (each checked against its signature). Spread over N jobs the deliveries run in
parallel; over few jobs each job's deliveries go one after another (the order rule).

Baselines, same run, same receiver: the same N signed bodies POSTed one after another from
this process with `requests.post` (a connection each), and with one keep-alive
`requests.Session`: what one thread of plain Python gets, with no database, queue or claim.
Then again with a receiver that takes `--remote-ms` (50) to answer, as one across a network.
"""
import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import requests

from bench.harness import PrivatePostgres, PrivateRedis, Proc, expand, procfile_lines, production_env, setup_django
from bench.webhook_receiver import Receiver, documented_verify

SECRET = "whsec_bench-secret-0123456789"
WAIT_S = 300


def start_worker(env: dict, workdir: Path) -> Proc:
    worker = Proc("webhooks", "webhooks", expand(procfile_lines()["webhooks"], env), env, workdir / "webhooks.log")
    worker.start()
    from celery import Celery

    with Celery(broker=env["REDIS_URL"], set_as_current=False) as app:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            replies = app.control.ping(timeout=0.5) or []
            if any(name.startswith("webhooks@") for reply in replies for name in reply):
                return worker
            time.sleep(0.2)
    raise RuntimeError(f"the webhooks worker did not answer; see {workdir / 'webhooks.log'}")


def world(jobs: int) -> tuple:
    """A customer, an ops user, `jobs` jobs, and an endpoint for NEW_MESSAGE on `url` (set later)."""
    from dispatch.models import Job, Role, ServiceCategory, User

    tag = f"wh{time.monotonic_ns()}"
    category = ServiceCategory.objects.create(name=f"Bench {tag}", slug=tag)
    customer = User.objects.create(username=f"{tag}-customer", role=Role.CUSTOMER, name="Bench Customer")
    made = Job.objects.bulk_create(
        Job(customer=customer, category=category, address="1 Bench Rd", latitude=28.61, longitude=77.21,
            total_price=0, commission_amount=0)
        for _ in range(jobs)
    )
    return customer, made


def run_through_worker(receiver: Receiver, *, events: int, jobs: int, endpoint_url: str) -> dict:
    """N events over J jobs in one transaction; seconds from the commit until the receiver holds them all."""
    from django.db import transaction

    from dispatch import events as event_log
    from dispatch.event_names import EventName
    from dispatch.models import User, WebhookDelivery
    from dispatch.services import webhooks

    customer, made = world(jobs)
    ops = User.objects.filter(username="bench-ops").first() or User.objects.create(username="bench-ops", role="ops")
    endpoint = webhooks.endpoint_create(url=endpoint_url, events=["NEW_MESSAGE"], secret=SECRET, created_by=ops)
    already = receiver.requests
    started = time.monotonic()
    with transaction.atomic():
        for i in range(events):
            event_log.emit(user=customer, name=EventName.NEW_MESSAGE, job=made[i % jobs], message_id=i,
                           sender_id=customer.pk, sender_name="Bench", content=f"message {i}")
        committing = time.monotonic()
    committed = time.monotonic()
    deadline = started + WAIT_S
    while receiver.requests - already < events and time.monotonic() < deadline:
        time.sleep(0.01)
    arrived = receiver.received[already:]
    if len(arrived) < events:
        raise RuntimeError(f"only {len(arrived)} of {events} deliveries arrived within {WAIT_S} s")
    sent = WebhookDelivery.objects.filter(endpoint=endpoint, status="SENT")
    while sent.count() < events and time.monotonic() < deadline:  # the last outcomes being recorded
        time.sleep(0.05)
    attempts = sum(WebhookDelivery.objects.filter(endpoint=endpoint).values_list("attempts", flat=True))
    webhooks.endpoint_delete(endpoint_id=endpoint.pk)
    verify = documented_verify()
    assert all(verify(SECRET, r.body, r.headers["Dispatch-Signature"]) for r in arrived)
    assert len({r.headers["Dispatch-Event-Id"] for r in arrived}) == events
    elapsed = max(r.at for r in arrived) - started
    latencies = sorted(r.at - committed for r in arrived)
    return {
        "events": events, "jobs": jobs, "write_s": round(committing - started, 3), "elapsed_s": round(elapsed, 3),
        "per_s": round(events / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000), "p99_ms": round(latencies[int(0.99 * (events - 1))] * 1000),
        "attempts": attempts,
        "bodies": [(r.body, r.headers) for r in arrived],
    }


def run_baseline(receiver: Receiver, bodies: list, *, keep_alive: bool) -> dict:
    """The same bodies POSTed one after another from this thread: requests.post, or one Session."""
    session = requests.Session() if keep_alive else None
    post = session.post if session else requests.post
    started = time.monotonic()
    for body, headers in bodies:
        answer = post(receiver.url, data=body, timeout=5, headers={
            "Content-Type": "application/json", "Dispatch-Event-Id": headers["Dispatch-Event-Id"],
            "Dispatch-Signature": headers["Dispatch-Signature"],
        })
        answer.raise_for_status()
    elapsed = time.monotonic() - started
    return {"events": len(bodies), "elapsed_s": round(elapsed, 3), "per_s": round(len(bodies) / elapsed, 1)}


def _row(label: str, run: dict, plain: dict, session: dict, jobs="–", latency="–") -> str:
    return (f"| {label} | {run['events']} | {jobs} | {run['per_s']:.0f} | {run['per_s'] / plain['per_s']:.2f}× | "
            f"{run['per_s'] / session['per_s']:.2f}× | {latency} |")


def render(results: dict, args, machine: str) -> str:
    plain, session = results["requests_post"], results["session"]
    command = (f"Command: `python -m bench.webhooks` · one `webhooks` worker (the Procfile's line, {args.concurrency} "
               f"threads) on PostgreSQL and Redis · machine: {machine}.")
    method = ("N events written in one transaction to one endpoint; timed from the commit's start until the receiver "
              "(a Python `ThreadingHTTPServer` on loopback) holds all N, each signature checked. Baselines in the "
              "same run post the same signed bodies to the same receiver from one thread.")
    header = ("| run | events | jobs | deliveries/s | vs `requests.post` | vs one keep-alive Session "
              "| p50 / p99 after commit |")
    lines = ["## Webhooks: deliveries/s through the worker to a loopback receiver", "", command, "", method, "",
             header, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for run in results["worker"]:
        spread = "one event per job" if run["jobs"] == run["events"] else f"{run['events'] // run['jobs']} per job"
        lines.append(_row(f"worker, receiver answers at once, {spread}", run, plain, session, run["jobs"],
                          f"{run['p50_ms']} / {run['p99_ms']} ms"))
    lines += [
        _row("baseline: `requests.post`, one thread", plain, plain, session),
        _row("baseline: one `requests.Session`, one thread", session, plain, session),
    ]
    slow = results["remote"]
    lines += [
        _row(f"worker, receiver answers after {args.remote_ms} ms, one event per job", slow["worker"],
             slow["requests_post"], slow["session"], slow["worker"]["jobs"],
             f"{slow['worker']['p50_ms']} / {slow['worker']['p99_ms']} ms"),
        _row(f"baseline, receiver answers after {args.remote_ms} ms: `requests.post`", slow["requests_post"],
             slow["requests_post"], slow["session"]),
        _row(f"baseline, receiver answers after {args.remote_ms} ms: one Session", slow["session"],
             slow["requests_post"], slow["session"]),
        "",
        results["note"],
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer deliveries; print, do not write docs")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--concurrency", type=int, default=8, help="the worker's threads (WEBHOOKS_CONCURRENCY)")
    parser.add_argument("--remote-ms", type=int, default=50, help="the slow receiver's answer time")
    args = parser.parse_args()
    events = args.events or (300 if args.quick else 2000)
    workdir = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    pg, redis = PrivatePostgres(), PrivateRedis(workdir)
    worker = None
    try:
        pg.start()
        redis.start()
        os.environ.update({"WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true", "WEBHOOKS_ENDPOINTS_CACHE_S": "0"})
        setup_django(pg.url, redis.url)
        env = {**production_env(database_url=pg.url, redis_url=redis.url, workdir=workdir),
               "WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true", "WEBHOOKS_CONCURRENCY": str(args.concurrency),
               "LOG_LEVEL": "WARNING"}
        worker = start_worker(env, workdir)
        with Receiver() as receiver:
            run_through_worker(receiver, events=50, jobs=50, endpoint_url=receiver.url)  # warm up connections
            runs = [run_through_worker(receiver, events=events, jobs=jobs, endpoint_url=receiver.url)
                    for jobs in (events, max(1, events // 100))]
            bodies = runs[0].pop("bodies")
            runs[1].pop("bodies")
            results = {"worker": runs, "requests_post": run_baseline(receiver, bodies, keep_alive=False),
                       "session": run_baseline(receiver, bodies, keep_alive=True)}
        # A receiver across a network: every answer takes remote_ms. The worker's threads wait in parallel.
        with Receiver(answer=lambda n: (200, args.remote_ms / 1000)) as remote:
            run = run_through_worker(remote, events=events // 2, jobs=events // 2, endpoint_url=remote.url)
            bodies = run.pop("bodies")[: max(20, 2000 // args.remote_ms)]  # a few seconds of one thread's posts
            results["remote"] = {"worker": run, "requests_post": run_baseline(remote, bodies, keep_alive=False),
                                 "session": run_baseline(remote, bodies, keep_alive=True)}
        results["note"] = (
            "Per delivery the worker claims the row (a locked read and an update), reads the event, POSTs, records "
            "the outcome and looks for the next of its job, plus a Redis message each way: about 7 database round "
            "trips and ~8 ms of Python in one process, which its threads share (the GIL), so on a loopback "
            "receiver the worker is CPU-bound and scales by running more `webhooks` processes, not threads. "
            "Threads pay off against receivers across a network: with each answer taking "
            f"{args.remote_ms} ms they wait in parallel (the last three rows). "
            "A job's own events go one after another (a delivery waits for the older ones of its job). "
            f"{os.cpu_count()} cores shared by the worker, PostgreSQL, Redis, the receiver and this process, "
            f"with other engineers' runs active (1-min load average {os.getloadavg()[0]:.1f} at the end)."
        )
    finally:
        if worker is not None:
            worker.signal_group(15)
            worker.process.wait(timeout=20)
        redis.stop()
        pg.stop()
    from bench.report import machine, write_section

    print(json.dumps(results, indent=1))
    text = render(results, args, machine())
    print(text)
    if not args.quick:
        write_section("webhooks", text)


if __name__ == "__main__":
    main()
