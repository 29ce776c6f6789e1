"""Beat's scheduler (config/beat.py): it sleeps until an entry is due instead of ticking through the wait."""
import time

from celery import Celery, beat

from config.beat import OnTimeScheduler
from config.celery import app as dispatch_app


def _ticks_and_runs(scheduler_class, tmp_path, seconds=1.5) -> tuple[int, int]:
    """Beat's own loop (`Service.start`: tick, sleep what it says) over two entries for `seconds`."""
    app = Celery(broker="memory://", set_as_current=False)
    app.conf.beat_schedule = {"a": {"task": "t.a", "schedule": 0.2}, "b": {"task": "t.b", "schedule": 0.3}}
    runs = []

    class Counted(scheduler_class):
        def apply_entry(self, entry, producer=None):  # what would be sent, counted instead
            runs.append(entry.name)

    scheduler = Counted(app=app, schedule_filename=str(tmp_path / "schedule"), lazy=False)
    ticks, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        interval = scheduler.tick()
        ticks += 1
        if interval and interval > 0:
            time.sleep(interval)
    scheduler.close()
    return ticks, len(runs)


def test_beat_sleeps_until_an_entry_is_due(tmp_path):
    ticks, runs = _ticks_and_runs(OnTimeScheduler, tmp_path)

    assert runs >= 9  # every 0.2 s and every 0.3 s for 1.5 s: 7 + 5 less a wake-up's lateness
    assert ticks <= 3 * runs  # a run, its sleep, now and then a look that finds the next one not due yet


def test_celerys_own_scheduler_ticks_through_the_wait(tmp_path):
    """Why config/beat.py exists: if Celery stops waking early, this fails and the subclass can go."""
    ticks, runs = _ticks_and_runs(beat.PersistentScheduler, tmp_path)

    assert ticks > 10 * runs


def test_the_app_runs_beat_with_it():
    assert dispatch_app.conf.beat_scheduler == "config.beat:OnTimeScheduler"
