"""`manage.py ensure_database`: create the PostgreSQL database DATABASE_URL names if it is missing.

`make up` runs it before `migrate`, so a fresh machine needs nothing but a reachable server and
a user allowed to create databases. Host, port, user, password and name all come from
DATABASE_URL, never from psql's defaults. SQLite creates its file on first connect: nothing to do.
"""
import psycopg
from django.conf import settings
from django.core.management.base import BaseCommand
from psycopg import errors, sql

# Every PostgreSQL server has it; CREATE DATABASE must run connected to some other database.
MAINTENANCE_DATABASE = "postgres"


class Command(BaseCommand):
    help = "Create the PostgreSQL database that DATABASE_URL names, unless it exists."

    def handle(self, **options):
        db = settings.DATABASES["default"]
        if not db["ENGINE"].endswith("postgresql"):
            self.stdout.write(f"{db['ENGINE']}: no database to create.")
            return
        name = db["NAME"]
        params = {key: db[setting] for key, setting in (("user", "USER"), ("password", "PASSWORD"),
                                                        ("host", "HOST"), ("port", "PORT")) if db.get(setting)}
        with psycopg.connect(dbname=MAINTENANCE_DATABASE, autocommit=True, **params) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
                self.stdout.write(f"Database {name} exists.")
                return
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except errors.DuplicateDatabase:  # another `make up` created it a moment ago
                self.stdout.write(f"Database {name} exists.")
                return
        self.stdout.write(f"Created database {name} on {params.get('host', 'the local socket')}.")
