"""bench/web_profile.py sorts py-spy's stacks of a web process into the parts docs/benchmarks.md reports."""
from bench.web_profile import PARTS, parts

THREAD = "Thread.run (threading.py:982);_worker (concurrent/futures/thread.py:83);SyncToAsync.thread_handler (asgiref/sync.py:635)"
LOOP = "Server.run (uvicorn/server.py:67);Runner.run (asyncio/runners.py:118)"


def test_each_sample_lands_in_the_first_part_its_stack_meets():
    lines = [
        f"{THREAD};SQLCompiler.as_sql (django/db/models/sql/compiler.py:755);Cursor.execute (psycopg/cursor.py:97) 5",
        f"{THREAD};JobSerializer.to_representation (api/serializers/jobs.py:90) 3",
        "Thread.run (threading.py:982);_worker (concurrent/futures/thread.py:81) 1",
        f"{LOOP};WebSocketsSansIOProtocol.send (uvicorn/protocols/websockets/websockets_sansio_impl.py:506) 4",
        f"{LOOP};RequestResponseCycle.send (uvicorn/protocols/http/httptools_impl.py:551) 2",
        f"{LOOP};SyncToAsync.__call__ (asgiref/sync.py:470) 6",
        f"{LOOP} 7",
        "Thread.run (threading.py:982);_LiveIndex._keep_following (dispatch/index.py:318);_records (dispatch/index.py:130) 9",
        "Thread.run (threading.py:982);_keep_marking (dispatch/push_marks.py:77) 10",
        "not a sample line",
    ]

    counts, total = parts(lines)

    assert total == 47
    assert [counts.get(part, 0) for part in PARTS] == [8, 5, 5, 1, 4, 2, 6, 7, 9, 10]
