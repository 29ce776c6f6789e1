"""Settings, read from the environment (django-environ) with safe development defaults.

Without DATABASE_URL / REDIS_URL the project runs embedded: SQLite, an in-memory
channel layer and broker. With them it runs on PostgreSQL and Redis (production, CI).
"""
from decimal import Decimal
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from config.broker import transport_for

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

# Only ever used in development: production refuses to start with it (below).
INSECURE_DEV_SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default=INSECURE_DEV_SECRET_KEY)
if not DEBUG and SECRET_KEY == INSECURE_DEV_SECRET_KEY:
    raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is false.")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
PORT = env.int("PORT", default=8000)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "dispatch",
    "api",
    "web",
]

MIDDLEWARE = [
    "api.http_metrics.HttpMetricsMiddleware",
    "api.errors.DatabaseBusyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded server writes from several threads (requests, the sweeper). IMMEDIATE
    # transactions take the write lock up front and wait for it (timeout), instead of
    # failing with "database is locked" when a reader later tries to write; WAL lets
    # readers carry on meanwhile.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # Production borrows connections from a pool per process (Django's, on psycopg_pool): a
    # request or task takes one and gives it back when it ends, so a process never holds more
    # than DATABASE_POOL_MAX_SIZE; one that finds them all taken waits DATABASE_POOL_TIMEOUT_S,
    # then answers 503 (api.errors.DatabaseBusyMiddleware). PostgreSQL needs max_connections of
    # at least processes x max size (README, "Database connections"). CONN_MAX_AGE instead keeps
    # a connection per thread, and under ASGI every request has a thread of its own: bursts ran
    # PostgreSQL out of connections (500s). 0 turns the pool off (development and the test
    # suite): a connection per request or task, kept CONN_MAX_AGE seconds.
    DATABASE_POOL_MAX_SIZE = env.int("DATABASE_POOL_MAX_SIZE", default=0 if DEBUG else 8)
    if DATABASE_POOL_MAX_SIZE > 0:
        if env.int("CONN_MAX_AGE", default=0):
            raise ImproperlyConfigured("CONN_MAX_AGE must be 0 with the connection pool (DATABASE_POOL_MAX_SIZE > 0).")
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": min(env.int("DATABASE_POOL_MIN_SIZE", default=1), DATABASE_POOL_MAX_SIZE),
            "max_size": DATABASE_POOL_MAX_SIZE,
            "timeout": env.float("DATABASE_POOL_TIMEOUT_S", default=10.0),
        }
        DATABASES["default"]["CONN_MAX_AGE"] = 0
    else:
        DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
    # Checked before reuse (the pool checks a connection as it lends it): by asking its socket whether the
    # server let go of it, and only then with a query (config/db/postgresql/base.py).
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"]["ENGINE"] = "config.db.postgresql"
# The hot path's own statements (dispatch/prepared.py) are prepared on the server, each once per
# connection. Off behind a pooler that hands a transaction any server connection (PgBouncer in
# transaction mode before 1.21): a statement prepared on one connection is unknown on the next.
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
if DATABASE_PREPARED_STATEMENTS and DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # psycopg prepares what a connection ran this many times; only server-bound cursors count, and
    # Django's own bind on the client, so nothing but those statements is prepared.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("prepare_threshold", 5)

REDIS_URL = env.str("REDIS_URL", default="")

AUTH_USER_MODEL = "dispatch.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Development serves straight from the apps' static folders; production runs collectstatic.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Request bodies above this are refused before a view sees them.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=256 * 1024)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.ExpiringTokenAuthentication",  # per-login tokens that end (docs/security.md)
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.StandardPagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "api.schema.DispatchAutoSchema",  # documents each route's error answers
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    "PAGE_SIZE": 20,
    # JSON is checked for depth and unencodable text before any view sees it (api/parsers.py).
    "DEFAULT_PARSER_CLASSES": [
        "api.parsers.CheckedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Dispatch API",
    "DESCRIPTION": "Dispatch and matching engine for home-services marketplaces.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Served from our own static files: the docs page works with no outside network.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "dispatch.models.jobs.JobStatus",
        "OfferStatusEnum": "dispatch.models.offers.OfferStatus",
    },
}

# --- Channel layer (SPEC section 6). Pushes are at most once by design: the Event table
# is the truth, and a client that missed a push gets it by reconnecting with
# ?last_event_id=. So a dropped message costs a replay, never an event.
if REDIS_URL:
    # Redis pub/sub rather than RedisChannelLayer: ~5x faster per message, and it keeps
    # nothing in Redis. That is why it has no capacity/expiry/group_expiry to set: a
    # message for a socket not subscribed at that instant is dropped at once, and group
    # membership is a subscription that dies with its connection and is re-made when the
    # connection to Redis is (RedisChannelLayer keeps groups in Redis, so a restarted Redis
    # would silently stop pushes to every connected socket until it reconnected). A sender
    # publishes once per event and never waits on sockets; the receiving server queues per
    # socket without blocking, so a slow socket only delays itself, until the server's
    # keepalive drops it and it replays on reconnect.
    CHANNEL_LAYERS = {
        "default": {
            # channels_redis's RedisPubSubChannelLayer, closing sockets (1012) when Redis drops.
            "BACKEND": "dispatch.realtime.channel_layer.ReconnectingPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": "dispatch"},
        }
    }
else:
    # Embedded: one process. A socket that falls `capacity` pushes behind loses the excess
    # (replay covers it); a push not read within `expiry` seconds is dropped, and so is the
    # socket from its group, as with Redis.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 1000, "expiry": 60, "group_expiry": 86400},
        }
    }
# Events older than this are pruned (hourly, `events.prune`); replay reaches back no further.
EVENTS_RETENTION_DAYS = env.int("EVENTS_RETENTION_DAYS", default=14)
# Pushes are at least once: an event still unpushed this long after it was written (its
# process died, or the channel layer refused it) is pushed again by `events.repush`,
# which beat runs this often. Sockets drop an id they already sent.
EVENTS_REPUSH_AFTER_S = env.float("EVENTS_REPUSH_AFTER_S", default=2.0)
EVENTS_REPUSH_INTERVAL_S = env.float("EVENTS_REPUSH_INTERVAL_S", default=2.0)
# A process hands on the ids of the events it pushed this often (dispatch/push_marks.py: to a Redis set that
# events.repush writes to PostgreSQL; without Redis, in one statement of its own); 0: each at once.
# Half EVENTS_REPUSH_AFTER_S, so a pushed event is marked before the repush would send it again (and one marked
# late is only pushed twice, which sockets drop); long enough that a process's pushes share a statement: at 0.1 s
# nearly every event had its own at 5 bookings/s, at 0.5 s each process still wrote ~2 a second.
EVENTS_MARK_PUSHED_S = env.float("EVENTS_MARK_PUSHED_S", default=1.0)

# --- Outlets (docs/realtime.md, "Outlets" and "Webhooks"). A webhook try that gets no 2xx within
# WEBHOOKS_TIMEOUT_S is tried again after WEBHOOKS_RETRY_BASE_S, doubling up to WEBHOOKS_RETRY_MAX_S,
# until WEBHOOKS_RETRY_FOR_S after its event (then GIVEN_UP); an endpoint failing this many tries
# in a row is disabled. Beat's webhooks.sweep queues due retries every WEBHOOKS_SWEEP_INTERVAL_S.
WEBHOOKS_TIMEOUT_S = env.float("WEBHOOKS_TIMEOUT_S", default=5.0)
WEBHOOKS_RETRY_BASE_S = env.float("WEBHOOKS_RETRY_BASE_S", default=5.0)
WEBHOOKS_RETRY_MAX_S = env.float("WEBHOOKS_RETRY_MAX_S", default=3600.0)
WEBHOOKS_RETRY_FOR_S = env.float("WEBHOOKS_RETRY_FOR_S", default=24 * 3600.0)
WEBHOOKS_DISABLE_AFTER_FAILURES = env.int("WEBHOOKS_DISABLE_AFTER_FAILURES", default=20)
WEBHOOKS_SWEEP_INTERVAL_S = env.float("WEBHOOKS_SWEEP_INTERVAL_S", default=2.0)
# Each process reads which endpoints want which events at most this often (an endpoint saved
# in another process is sent events within this long).
WEBHOOKS_ENDPOINTS_CACHE_S = env.float("WEBHOOKS_ENDPOINTS_CACHE_S", default=2.0)
# Webhook URLs whose host resolves to a private, loopback, link-local, multicast or reserved
# address are refused (SSRF), when saved and at every send, unless this is true (tests, or
# receivers on your own private network).
WEBHOOKS_ALLOW_PRIVATE_TARGETS = env.bool("WEBHOOKS_ALLOW_PRIVATE_TARGETS", default=False)
if WEBHOOKS_TIMEOUT_S <= 0 or WEBHOOKS_RETRY_BASE_S <= 0 or WEBHOOKS_DISABLE_AFTER_FAILURES < 1:
    raise ImproperlyConfigured("WEBHOOKS_TIMEOUT_S and WEBHOOKS_RETRY_BASE_S must be > 0, "
                               "WEBHOOKS_DISABLE_AFTER_FAILURES at least 1.")
# The SMS/push adapter (dispatch/notify.py): a dotted path to a class with send(to_user, text, event).
# The console backend logs instead of sending; point this at your provider's class.
NOTIFY_BACKEND = env.str("NOTIFY_BACKEND", default="dispatch.notify.ConsoleBackend")
NOTIFY_MAX_ATTEMPTS = env.int("NOTIFY_MAX_ATTEMPTS", default=5)

# The in-memory transport ignores the host, but kombu warns on every connection without one.
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
# kombu's Redis transport without a new client per command, for a plain redis:// broker (config/broker.py).
CELERY_BROKER_TRANSPORT = transport_for(CELERY_BROKER_URL)
# Embedded: no broker process, so tasks run in-process right after the commit that queued them.
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL

# Web and worker processes freeze their start-up objects out of the garbage collector's full
# passes (dispatch/gc_tuning.py); false to compare.
GC_FREEZE = env.bool("GC_FREEZE", default=True)

# --- Dispatch rules (SPEC section 5); per-category overrides live on ServiceCategory.
DISPATCH_OFFER_TIMEOUT_S = env.int("DISPATCH_OFFER_TIMEOUT_S", default=30)
DISPATCH_BATCH_SIZE = env.int("DISPATCH_BATCH_SIZE", default=1)
DISPATCH_SWEEP_INTERVAL_S = env.int("DISPATCH_SWEEP_INTERVAL_S", default=5)
# How often live offers past their deadline are expired (and their jobs offered on): an offer
# times out within DISPATCH_OFFER_TIMEOUT_S plus about this.
DISPATCH_EXPIRY_TICK_S = env.float("DISPATCH_EXPIRY_TICK_S", default=1.0)
DISPATCH_RADIUS_STEPS_KM = env.list("DISPATCH_RADIUS_STEPS_KM", cast=float, default=[3.0, 6.0, 10.0])
DISPATCH_MAX_OFFERS_PER_JOB = env.int("DISPATCH_MAX_OFFERS_PER_JOB", default=10)
# An instant job nobody took within this long ends UNFULFILLED.
DISPATCH_SEARCH_DEADLINE_S = env.int("DISPATCH_SEARCH_DEADLINE_S", default=300)
# Booking answers 503 (Retry-After) while the oldest dispatch message has waited longer than
# this on the broker: accepting faster than workers dispatch makes every booking late
# (dispatch/backlog.py). 0 turns shedding off.
DISPATCH_MAX_LAG_S = env.float("DISPATCH_MAX_LAG_S", default=2.0)
DISPATCH_BACKLOG_RETRY_AFTER_S = env.int("DISPATCH_BACKLOG_RETRY_AFTER_S", default=5)
# ...unless no worker consumes the offers queue: then the lag is an outage, not overload, and
# bookings are taken and queued (dispatch/queue_presence.py). A worker that has not stamped its
# queues for this long counts as gone; keep it below DISPATCH_MAX_LAG_S, so that a killed worker
# is known gone before its queue's lag would shed bookings.
DISPATCH_CONSUMER_STALE_S = env.float("DISPATCH_CONSUMER_STALE_S", default=1.5)
# --- Provider time (SPEC sections 3-5). All of these, like the rules above, can be
# overridden per category (ServiceCategory.dispatch_policy; see dispatch/policy.py).
# Working hours are wall-clock times in the provider's zone; this is a new provider's zone.
DISPATCH_DEFAULT_TIME_ZONE = env.str("DISPATCH_DEFAULT_TIME_ZONE", default="Asia/Kolkata")
# Offers for a slot give the provider longer to answer than instant ones.
DISPATCH_SCHEDULED_OFFER_TIMEOUT_S = env.int("DISPATCH_SCHEDULED_OFFER_TIMEOUT_S", default=600)
# A slot's search runs until this long before its start, then the job is UNFULFILLED;
# a slot can be booked no sooner than this ahead.
DISPATCH_SCHEDULED_LEAD_S = env.int("DISPATCH_SCHEDULED_LEAD_S", default=2 * 3600)
# Travel time reserved before every job, on top of its duration.
DISPATCH_TRAVEL_BUFFER_MIN = env.int("DISPATCH_TRAVEL_BUFFER_MIN", default=30)
# How many jobs a provider runs at once (ASSIGNED instant, IN_PROGRESS, or holds now).
DISPATCH_CAPACITY = env.int("DISPATCH_CAPACITY", default=1)
# Both sides get JOB_REMINDER this long before a slot starts.
DISPATCH_REMINDER_BEFORE_S = env.int("DISPATCH_REMINDER_BEFORE_S", default=3600)
# An ASSIGNED job not started this long after its start can be marked a no-show.
DISPATCH_NO_SHOW_GRACE_S = env.int("DISPATCH_NO_SHOW_GRACE_S", default=15 * 60)
# Free starts are offered on this grid (minutes from local midnight), this many days ahead.
DISPATCH_SLOT_STEP_MIN = env.int("DISPATCH_SLOT_STEP_MIN", default=30)
DISPATCH_SLOT_DAYS_AHEAD = env.int("DISPATCH_SLOT_DAYS_AHEAD", default=30)
# A job with nobody free right now is looked at again this often (instant / slot) until
# its deadline, by the sweeper.
DISPATCH_RETRY_S = env.int("DISPATCH_RETRY_S", default=5)
DISPATCH_SCHEDULED_RETRY_S = env.int("DISPATCH_SCHEDULED_RETRY_S", default=60)
# The sweeper leaves a just-booked job alone this long: its own dispatch task is on the way.
DISPATCH_STUCK_AFTER_S = env.int("DISPATCH_STUCK_AFTER_S", default=10)
# With no broker, the web process also keeps dispatch's clock (see dispatch/embedded.py).
DISPATCH_EMBEDDED_WORKER = env.bool("DISPATCH_EMBEDDED_WORKER", default=not REDIS_URL)
# Pings are written to PostgreSQL behind, in one statement per this many seconds (the newest per provider).
LOCATION_FLUSH_S = env.float("LOCATION_FLUSH_S", default=2.0)
# Cash jobs leave the provider owing the commission (docs/money.md). Once a provider owes this much they
# get no new offers until they pay it down (through the gateway, or in cash to ops); 0: no limit.
DISPATCH_DUES_LIMIT = env.int("DISPATCH_DUES_LIMIT", default=2000)
if DISPATCH_DUES_LIMIT < 0:
    raise ImproperlyConfigured("DISPATCH_DUES_LIMIT must be 0 (no limit) or more.")
# Regions (dispatch/regions.py): `name:min_lat,min_lng,max_lat,max_lng;…`; empty: one region, as before.
DISPATCH_REGIONS = env.str("DISPATCH_REGIONS", default="")
CELERY_BEAT_SCHEDULE = {
    "dispatch.sweep": {"task": "dispatch.sweep", "schedule": float(DISPATCH_SWEEP_INTERVAL_S)},
    # Offer timeouts: one task per tick reads the deadlines (dispatch.services.dispatching.offers_expire_due).
    "dispatch.expire_due": {
        "task": "dispatch.expire_due",
        "schedule": DISPATCH_EXPIRY_TICK_S,
        "options": {"expires": DISPATCH_EXPIRY_TICK_S},
    },
    "events.prune": {"task": "events.prune", "schedule": 3600.0},
    "ops.purge_tokens": {"task": "ops.purge_tokens", "schedule": 86400.0},
    "events.repush": {
        "task": "events.repush",
        "schedule": EVENTS_REPUSH_INTERVAL_S,
        # A late run is useless once the next is due; do not let them pile up.
        "options": {"expires": EVENTS_REPUSH_INTERVAL_S},
    },
    "dispatch.remind": {"task": "dispatch.remind", "schedule": 30.0, "options": {"expires": 30}},
    # Webhook and SMS retries that are due, and sends whose after-commit task was lost.
    "webhooks.sweep": {
        "task": "webhooks.sweep",
        "schedule": WEBHOOKS_SWEEP_INTERVAL_S,
        "options": {"expires": WEBHOOKS_SWEEP_INTERVAL_S},
    },
    # Pings reach PostgreSQL behind, in one statement per run; tracking is checked against it now and then.
    "location.flush": {"task": "location.flush", "schedule": LOCATION_FLUSH_S, "options": {"expires": LOCATION_FLUSH_S}},
    "location.reconcile": {"task": "location.reconcile", "schedule": 60.0, "options": {"expires": 60}},
    # Proves beat and a housekeeping worker are alive; /readyz fails once it lapses.
    "ops.heartbeat": {"task": "ops.heartbeat", "schedule": 5.0, "options": {"expires": 5}},
}
# Each region's sweep and offer timeouts run on its own reassign queue, in the worker that holds its
# providers, and claim only its jobs (the entries above are the default region's).
for _region in filter(None, (part.split(":")[0].strip() for part in DISPATCH_REGIONS.split(";"))):
    for _default in ("dispatch.sweep", "dispatch.expire_due"):
        CELERY_BEAT_SCHEDULE[_default]["kwargs"] = {"region": ""}  # the default region's jobs only
    CELERY_BEAT_SCHEDULE[f"dispatch.sweep.{_region}"] = {
        "task": "dispatch.sweep", "schedule": float(DISPATCH_SWEEP_INTERVAL_S), "kwargs": {"region": _region},
        "options": {"queue": f"reassign.{_region}"},
    }
    CELERY_BEAT_SCHEDULE[f"dispatch.expire_due.{_region}"] = {
        "task": "dispatch.expire_due", "schedule": DISPATCH_EXPIRY_TICK_S, "kwargs": {"region": _region},
        "options": {"queue": f"reassign.{_region}", "expires": DISPATCH_EXPIRY_TICK_S},
    }
HEALTH_WORKER_STALE_S = env.int("HEALTH_WORKER_STALE_S", default=30)
# With DEBUG off, /metrics answers only ops: an ops user's token, or `Authorization: Bearer <this>`
# (a Prometheus scraper's, which has no user). Empty: no bearer token is accepted (docs/security.md).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Where the ops page links to Flower: `make up` serves it on FLOWER_PORT (5555 unless set).
FLOWER_URL = env.str("FLOWER_URL", default=f"http://127.0.0.1:{env.int('FLOWER_PORT', default=5555)}/")
COMMISSION_RATE = env.float("COMMISSION_RATE", default=0.15)
# Live location (SPEC section 6): a provider's pings answer 429 if sooner than this after
# the last accepted one (0 disables the limit); ETA = great-circle distance at this speed.
LOCATION_MIN_INTERVAL_S = env.float("LOCATION_MIN_INTERVAL_S", default=2.0)
# `live`: pings go to the live store (Redis, or this process embedded) and PostgreSQL gets them behind;
# `database`: each ping locks and writes the provider's row (the path before issue 19, kept to compare).
LOCATION_PINGS_TO = env.str("LOCATION_PINGS_TO", default="live")
if LOCATION_PINGS_TO not in ("live", "database"):
    raise ImproperlyConfigured("LOCATION_PINGS_TO must be live or database.")
DISPATCH_ETA_SPEED_KMH = env.float("DISPATCH_ETA_SPEED_KMH", default=25.0)
if LOCATION_MIN_INTERVAL_S < 0 or DISPATCH_ETA_SPEED_KMH <= 0:
    raise ImproperlyConfigured("LOCATION_MIN_INTERVAL_S must be >= 0 and DISPATCH_ETA_SPEED_KMH > 0.")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    # One-time socket tickets (dispatch/realtime/socket_auth.py): issued by one server process,
    # redeemed by whichever one the WebSocket reaches, so in Redis when there is one.
    "socket_tickets": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL, "KEY_PREFIX": "dispatch"}
        if REDIS_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "socket-tickets"}
    ),
}
SOCKET_TICKET_TTL_S = env.int("SOCKET_TICKET_TTL_S", default=30)
# A token unused for this long expires; each use slides its expiry (dispatch/services/accounts.py).
# Beyond this many live tokens per user, a login revokes the least recently used.
AUTH_TOKEN_TTL_DAYS = env.int("AUTH_TOKEN_TTL_DAYS", default=30)
AUTH_TOKENS_PER_USER = env.int("AUTH_TOKENS_PER_USER", default=20)
if AUTH_TOKEN_TTL_DAYS < 1 or AUTH_TOKENS_PER_USER < 1:
    raise ImproperlyConfigured("AUTH_TOKEN_TTL_DAYS and AUTH_TOKENS_PER_USER must be at least 1.")

# --- Abuse limits (api/throttles.py, dispatch/realtime/consumers.py). REST rates are "<count>/<s|min|hour|day>"
# per scope (None switches one off), counted atomically by dispatch/rate_limits.py (in Redis when
# there is one, so a limit holds across server processes); over it a request answers 429 with
# Retry-After. The client's address is REMOTE_ADDR, never a client-sent X-Forwarded-For
# (NUM_PROXIES 0): behind a proxy, run uvicorn with --proxy-headers. A load test from one
# address raises the *_IP rates.
THROTTLE_RATES = {
    "login_ip": env.str("THROTTLE_LOGIN_IP", default="30/min"),
    "login_username": env.str("THROTTLE_LOGIN_USERNAME", default="10/min"),
    "booking_user": env.str("THROTTLE_BOOKING_USER", default="10/min"),
    "booking_ip": env.str("THROTTLE_BOOKING_IP", default="60/min"),
    "password_user": env.str("THROTTLE_PASSWORD_USER", default="5/min"),
    "password_ip": env.str("THROTTLE_PASSWORD_IP", default="30/min"),
    "chat_user": env.str("THROTTLE_CHAT_USER", default="30/min"),
    "chat_ip": env.str("THROTTLE_CHAT_IP", default="300/min"),
    "location_user": env.str("THROTTLE_LOCATION_USER", default="60/min"),
    "location_ip": env.str("THROTTLE_LOCATION_IP", default="600/min"),
    # In-app call signalling frames (offer, answer, ICE candidates, hang-up) a user may send.
    "call_user": env.str("THROTTLE_CALL_USER", default="120/min"),
}
REST_FRAMEWORK["NUM_PROXIES"] = 0
# A socket sending more client frames than this within one second is closed (4429); a user's
# sockets beyond this many on one server process are closed as they connect (4409).
SOCKET_MAX_FRAMES_PER_S = env.int("SOCKET_MAX_FRAMES_PER_S", default=20)
SOCKET_MAX_PER_USER = env.int("SOCKET_MAX_PER_USER", default=10)
if SOCKET_MAX_FRAMES_PER_S < 1 or SOCKET_MAX_PER_USER < 1:
    raise ImproperlyConfigured("SOCKET_MAX_FRAMES_PER_S and SOCKET_MAX_PER_USER must be at least 1.")

# --- In-app calls (dispatch/services/calls.py): the STUN/TURN servers browsers use to reach each other,
# as RTCPeerConnection takes them: [{"urls": "stun:stun.example.com:3478"}, {"urls": "turn:…",
# "username": "…", "credential": "…"}]. None by default: two browsers on one machine or LAN need none.
WEBRTC_ICE_SERVERS = env.json("WEBRTC_ICE_SERVERS", default=[])
if not isinstance(WEBRTC_ICE_SERVERS, list) or not all(
    isinstance(server, dict) and isinstance(server.get("urls"), str | list) for server in WEBRTC_ICE_SERVERS
):
    raise ImproperlyConfigured('WEBRTC_ICE_SERVERS is a JSON list of {"urls": …} objects.')
# Each browser learns the other's IP addresses from the ICE candidates of a direct call. With this on, calls
# go only through your TURN server (RTCPeerConnection's iceTransportPolicy "relay"): neither side learns the
# other's address, at the cost of relaying every call's audio.
WEBRTC_RELAY_ONLY = env.bool("WEBRTC_RELAY_ONLY", default=False)
if WEBRTC_RELAY_ONLY and not any(
    str(url).startswith(("turn:", "turns:"))
    for server in WEBRTC_ICE_SERVERS for url in ([server["urls"]] if isinstance(server["urls"], str) else server["urls"])
):
    raise ImproperlyConfigured("WEBRTC_RELAY_ONLY needs a TURN server (turn: or turns:) in WEBRTC_ICE_SERVERS.")

# --- Phone numbers and masked calls (dispatch/services/contact.py, docs/telephony.md). While masking is on
# no party sees the other's real number (they call in the app, or through a bridge number); off, the real
# number is shown from assignment until the job ends. Ops always see real numbers.
PHONE_MASKING = env.bool("PHONE_MASKING", default=True)
# A dotted path to a class implementing dispatch.telephony.TelephonyBackend (Exotel, Twilio…); the console
# one hands out fictional numbers and dials nobody.
TELEPHONY_BACKEND = env.str("TELEPHONY_BACKEND", default="dispatch.telephony.ConsoleBackend")
# The secret the provider's "where do I route this call" webhook is signed with; unset, every one is refused.
TELEPHONY_WEBHOOK_SECRET = env.str("TELEPHONY_WEBHOOK_SECRET", default="")
# How often bridges of jobs that ended or changed hands give their numbers back (they route nowhere already).
TELEPHONY_SWEEP_S = env.float("TELEPHONY_SWEEP_S", default=60.0)
if TELEPHONY_SWEEP_S <= 0:
    raise ImproperlyConfigured("TELEPHONY_SWEEP_S must be > 0.")

# --- Matching (SPEC section 4)
MATCHING_WEIGHTS = {
    "distance": env.float("MATCHING_WEIGHT_DISTANCE", default=0.40),
    "rating": env.float("MATCHING_WEIGHT_RATING", default=0.25),
    "availability": env.float("MATCHING_WEIGHT_AVAILABILITY", default=0.10),
    "acceptance": env.float("MATCHING_WEIGHT_ACCEPTANCE", default=0.15),
    "fairness": env.float("MATCHING_WEIGHT_FAIRNESS", default=0.10),
    "distance_scale_km": env.float("MATCHING_DISTANCE_SCALE_KM", default=3.0),
}
# A provider whose last position fix is older than this counts as offline (0 disables the rule).
MATCHING_LOCATION_MAX_AGE_S = env.int("MATCHING_LOCATION_MAX_AGE_S", default=900)
# Every matching process follows the provider change stream (dispatch/index.py, dispatch/live_store.py).
# Once per this many seconds one process of the fleet re-announces the profiles changed in PostgreSQL
# (the net under the after-commit announcements; 0: before every query, as tests do).
MATCHING_RELAY_S = env.float("MATCHING_RELAY_S", default=2.0)
# A thread of each matching process applies the change stream this often, off the queries' path (a query
# then sees changes up to ~this old); 0: every query applies it first (tests: read-your-own-writes). Each wake
# costs every process a stream read whatever it brings: at 50 ms the follower was 12 % of a worker's CPU at 5
# bookings/s (py-spy), waking for an entry or two at a time. A quarter second is a quarter of what SPEC lets
# matching lag (1 s); the offer itself checks the database, so a provider busy meanwhile is never offered.
MATCHING_FOLLOW_S = env.float("MATCHING_FOLLOW_S", default=0.25)
# The stream keeps about this many entries; a process further behind reloads a snapshot.
LIVE_STREAM_MAXLEN = env.int("LIVE_STREAM_MAXLEN", default=100_000)
# Every key of the live store (positions, the stream, tracking) starts with this, in one hash tag.
LIVE_KEY_PREFIX = env.str("LIVE_KEY_PREFIX", default="dispatch:live")
SEARCH_DEFAULT_RADIUS_KM = env.float("SEARCH_DEFAULT_RADIUS_KM", default=10.0)
# Before assignment others see a provider's position snapped to this grid (0.01° ≈ 1.1 km)
# and distances from it rounded to 0.1 km (dispatch/selectors.py, location privacy).
LOCATION_PRIVACY_GRID_DEG = env.float("LOCATION_PRIVACY_GRID_DEG", default=0.01)
if not 0 <= COMMISSION_RATE < 1:
    raise ImproperlyConfigured("COMMISSION_RATE must be in [0, 1).")

# --- Money (SPEC section 8, docs/money.md). The gateway is a dotted path to a class
# implementing dispatch.payments.PaymentGateway; the default approves test payments only.
PAYMENT_GATEWAY = env.str("PAYMENT_GATEWAY", default="dispatch.payments.TestModeGateway")
# The test gateway approves top-ups nobody paid for: production must opt in to it (a demo).
PAYMENT_ALLOW_TEST_GATEWAY = env.bool("PAYMENT_ALLOW_TEST_GATEWAY", default=DEBUG)
if PAYMENT_GATEWAY == "dispatch.payments.TestModeGateway" and not PAYMENT_ALLOW_TEST_GATEWAY:
    raise ImproperlyConfigured(
        "PAYMENT_GATEWAY is the test-mode gateway, which credits money nobody paid: set a real gateway, "
        "or PAYMENT_ALLOW_TEST_GATEWAY=true for a demo."
    )
WALLET_TOPUP_MAX = Decimal(env.str("WALLET_TOPUP_MAX", default="50000.00"))
# Charged when the customer cancels an assigned job (0: free); at most the job's total. Free anyway for a slot
# cancelled at least CANCELLATION_FREE_BEFORE_S before its start, or an instant job cancelled within
# CANCELLATION_FREE_AFTER_ASSIGN_S of its assignment. All three per category (dispatch/policy.py).
CANCELLATION_FEE = Decimal(env.str("CANCELLATION_FEE", default="0"))
CANCELLATION_FREE_BEFORE_S = env.int("CANCELLATION_FREE_BEFORE_S", default=2 * 3600)
CANCELLATION_FREE_AFTER_ASSIGN_S = env.int("CANCELLATION_FREE_AFTER_ASSIGN_S", default=300)
if WALLET_TOPUP_MAX <= 0 or CANCELLATION_FEE < 0 or CANCELLATION_FREE_BEFORE_S < 0 or CANCELLATION_FREE_AFTER_ASSIGN_S < 0:
    raise ImproperlyConfigured("WALLET_TOPUP_MAX must be > 0; CANCELLATION_FEE and its free windows >= 0.")
# Payouts of providers' wallet balances to their banks (docs/money.md): a dotted path to a class implementing
# dispatch.payments.PayoutRail (the default test rail moves no money), the smallest balance a batch pays
# out, and how often beat runs a batch (0: only when ops run one).
PAYOUT_RAIL = env.str("PAYOUT_RAIL", default="dispatch.payments.TestModePayoutRail")
PAYOUT_MIN = Decimal(env.str("PAYOUT_MIN", default="100.00"))
PAYOUTS_EVERY_S = env.float("PAYOUTS_EVERY_S", default=0.0)
if PAYOUT_MIN <= 0 or PAYOUTS_EVERY_S < 0:
    raise ImproperlyConfigured("PAYOUT_MIN must be > 0 and PAYOUTS_EVERY_S >= 0.")
if PAYOUTS_EVERY_S:
    CELERY_BEAT_SCHEDULE["payouts.run"] = {"task": "payouts.run", "schedule": PAYOUTS_EVERY_S}
CELERY_BEAT_SCHEDULE["telephony.close_ended"] = {
    "task": "telephony.close_ended", "schedule": TELEPHONY_SWEEP_S, "options": {"expires": TELEPHONY_SWEEP_S},
}

if not DEBUG:
    # Production sits behind a TLS-terminating proxy that sets X-Forwarded-Proto (and strips
    # a client's own). `manage.py check --deploy --fail-level WARNING` passes with these
    # defaults (tests/security/test_deploy.py). `make up` and docker-compose run plain HTTP
    # on loopback and turn the HTTPS-only ones off through the environment.
    if env.bool("SECURE_PROXY_SSL_HEADER", default=True):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # Load balancers and scrapers call these inside the network, over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
    X_FRAME_OPTIONS = "DENY"
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    SESSION_COOKIE_HTTPONLY = True
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
    # PASSWORD_HASHERS is Django's default (PBKDF2 first): only the tests swap in a fast one.

# JSON lines for log collectors in production; readable text while developing.
LOG_FORMAT = env.str("LOG_FORMAT", default="text" if DEBUG else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "pythonjsonlogger.json.JsonFormatter", "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "text": {"()": "dispatch.log_format.ReadableFormatter", "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    # Socket tokens and tickets ride in query strings: their values never reach a log line.
    "filters": {"redact_secrets": {"()": "dispatch.log_redact.RedactSecretsFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["redact_secrets"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        # uvicorn logs WebSocket handshakes with their query string on uvicorn.error (which
        # keeps uvicorn's own handler), HTTP requests on uvicorn.access (now our console).
        "uvicorn.error": {"filters": ["redact_secrets"]},
        "uvicorn.access": {"handlers": ["console"], "filters": ["redact_secrets"], "propagate": False},
        # One line per task is the worker's business; the embedded server would drown in them.
        **({} if REDIS_URL else {"celery.app.trace": {"level": "WARNING"}}),
    },
}
