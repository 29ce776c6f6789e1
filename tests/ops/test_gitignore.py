"""What running the project leaves in the work tree stays out of git."""
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_embedded_database_and_its_side_files_are_ignored():
    files = ["db.sqlite3", "db.sqlite3-journal", "db.sqlite3-wal", "db.sqlite3-shm", ".run/metrics/counter_1.db"]

    ignored = subprocess.run(["git", "check-ignore", "--no-index", *files], cwd=ROOT, capture_output=True, text=True,
                             check=True)

    assert ignored.stdout.split() == files
