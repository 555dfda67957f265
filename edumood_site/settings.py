"""EduMood settings. Every deployment-specific value comes from the environment (see README)."""

import hashlib
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from .env import env_bool, env_choice, env_int, env_list, env_rate, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("EDUMOOD_VAR_DIR", str(BASE_DIR / "var")))

# Development mode: Django's debug pages (every URL of the site on a 404, tracebacks on a 500).
# Never for anyone but a developer: `make run` starts with it off, on plain http (below).
DEBUG = env_bool("DEBUG", False)
# Served over HTTPS (a TLS proxy in front): secure cookies, HSTS, http redirected to https.
# `make run` serves plain http on 127.0.0.1 with this off; production keeps the default.
EDUMOOD_HTTPS = env_bool("EDUMOOD_HTTPS", not DEBUG)
# Without SECRET_KEY, keep a random key in EDUMOOD_VAR_DIR/secret_key (made at first start) so
# log-ins survive restarts: for one machine (`make run`, development). Production sets
# SECRET_KEY, and a missing one stops the start, never a silent default.
EDUMOOD_LOCAL_SECRET_KEY = env_bool("EDUMOOD_LOCAL_SECRET_KEY", DEBUG)
SECRET_KEY = env_str("SECRET_KEY", "") if EDUMOOD_LOCAL_SECRET_KEY else env_str("SECRET_KEY")
# Empty: the start-up step (edumood_site.apps) makes or reads the key kept in this file.
EDUMOOD_SECRET_KEY_FILE = None if SECRET_KEY else VAR_DIR / "secret_key"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "edumood_site",  # first: its start-up step makes the folders and key the others use
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "classifier",
    "analytics",
    "accounts",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "edumood_site.urls"
WSGI_APPLICATION = "edumood_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "classifier.context_processors.serving_model",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'edumood.sqlite3'}"), conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server, the worker and their heartbeat threads write concurrently: WAL mode and a
    # generous lock timeout keep SQLite from answering "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # A file, not memory: integration tests share the test database with worker processes.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# API throttle counters must be shared by every web process (gunicorn -w N), so the cache is
# the database (table created by the accounts migrations) or, in production, Redis; never a
# per-process memory cache. (The log-in limits are rows of their own: accounts.LoginBudget.)
CACHE_URL = env_str("CACHE_URL", "")
if CACHE_URL and not CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured(f"CACHE_URL={CACHE_URL!r} must be a redis:// URL (or empty).")
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
    if CACHE_URL
    else {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "edumood_cache"}
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Every password check (API token, /login/, admin login) goes through the log-in limits.
AUTHENTICATION_BACKENDS = ["accounts.login_limits.LimitedModelBackend"]
# Failed log-ins allowed per (account, client address) pair, and per address for all accounts:
# a burst of N, then one per period/N (accounts/login_limits.py). The address's budget is shared
# by everyone behind one NAT address (a school): large, and skipped by known pairs.
if env_str("EDUMOOD_LOGIN_ACCOUNT_RATE", ""):  # a limit an operator set must not vanish quietly
    raise ImproperlyConfigured(
        "EDUMOOD_LOGIN_ACCOUNT_RATE is now EDUMOOD_LOGIN_PAIR_RATE: failed log-ins per account "
        "and client address (see the README's log-in limits)."
    )
EDUMOOD_LOGIN_PAIR_RATE = env_rate("EDUMOOD_LOGIN_PAIR_RATE", "10/hour")
EDUMOOD_LOGIN_ADDRESS_RATE = env_rate("EDUMOOD_LOGIN_ADDRESS_RATE", "300/hour")
# How many reverse proxies in front of the web server append to X-Forwarded-For. 0: the client
# is the peer address, and the header (which any client can write) is ignored.
EDUMOOD_TRUSTED_PROXIES = env_int("EDUMOOD_TRUSTED_PROXIES", 0)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
FORMAT_MODULE_PATH = ["edumood_site.formats"]

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # collectstatic writes a gzip copy beside each file, which whitenoise sends to clients that
    # accept it (plotly's bundles shrink to about a third); in development without hashed names.
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
# Whether whitenoise serves the collected, compressed files of STATIC_ROOT (production, and the
# web server of `make run`, whose runall collects them first) or the app folders as edited,
# uncompressed (development servers and tests).
EDUMOOD_STATIC_COLLECTED = env_bool("EDUMOOD_STATIC_COLLECTED", not DEBUG)
WHITENOISE_USE_FINDERS = not EDUMOOD_STATIC_COLLECTED
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "media/"


def s3_storage(*, bucket, endpoint_url, access_key, secret_key, region, addressing_style) -> dict:
    """STORAGES["default"] for an S3-compatible bucket (MinIO, Ceph, a cloud bucket), private.

    No object gets an ACL of its own (they are the bucket's: never public-read), and a URL the
    storage would make is signed and expires in 5 minutes; the app itself serves images, after
    its permission checks and with its access log (analytics.views.photo_image). Names are
    random or content hashes, so an upload may write its name without asking whether it is
    taken (file_overwrite). Empty credentials leave them to boto3 (an instance role).
    """
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": endpoint_url or None,
            "access_key": access_key or None,
            "secret_key": secret_key or None,
            "region_name": region,
            "addressing_style": addressing_style,
            "signature_version": "s3v4",
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": 300,
            "file_overwrite": True,
            # Objects read through the storage spool to disk above this (a dataset cache, a
            # checkpoint), not to memory.
            "max_memory_size": 16 * 1024 * 1024,
        },
    }


# Where photos, blurred copies, dataset archives and caches, and checkpoints live: `local`
# (MEDIA_ROOT: one machine, `make run`) or `s3`, a bucket that web servers and workers on other
# hosts share with nothing else but the database and the broker. Every read and write goes
# through Django's storage API (edumood_site/storage.py gives the ml library paths).
EDUMOOD_STORAGE = env_choice("EDUMOOD_STORAGE", ("local", "s3"), "local")
if EDUMOOD_STORAGE == "s3":
    STORAGES["default"] = s3_storage(
        bucket=env_str("EDUMOOD_S3_BUCKET"),
        endpoint_url=env_str("EDUMOOD_S3_ENDPOINT_URL", ""),
        access_key=env_str("EDUMOOD_S3_ACCESS_KEY_ID", ""),
        secret_key=env_str("EDUMOOD_S3_SECRET_ACCESS_KEY", ""),
        region=env_str("EDUMOOD_S3_REGION", "us-east-1"),
        # MinIO and Ceph want path-style addressing (http://host/bucket/key); AWS accepts both.
        addressing_style=env_choice("EDUMOOD_S3_ADDRESSING_STYLE", ("path", "virtual"), "path"),
    )

# Upload limits: a batch is rejected per file, never half-stored.
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
# Larger request bodies are spooled here, not to /tmp: a crashed process's leftovers are swept
# (analytics.services.uploads.sweep_upload_leftovers) by the beat schedule below.
FILE_UPLOAD_TEMP_DIR = VAR_DIR / "uploads"
# The folders the start-up step (edumood_site.apps) makes: importing the settings makes none.
EDUMOOD_FOLDERS = [VAR_DIR, FILE_UPLOAD_TEMP_DIR]
# How old a file with no row must be before the sweep removes it (uploads in flight are younger).
EDUMOOD_UPLOAD_LEFTOVER_SECONDS = env_int("EDUMOOD_UPLOAD_LEFTOVER_SECONDS", 3600)
EDUMOOD_MAX_UPLOAD_BYTES = env_int("EDUMOOD_MAX_UPLOAD_BYTES", 25 * 1024 * 1024)
EDUMOOD_MAX_IMAGE_PIXELS = env_int("EDUMOOD_MAX_IMAGE_PIXELS", 50_000_000)
EDUMOOD_MAX_FILES_PER_BATCH = env_int("EDUMOOD_MAX_FILES_PER_BATCH", 100)
# Pixel amplification: real photos hold a few pixels per byte of file (a 12 MP JPEG is 2-5 MB,
# a flat 4K screenshot as PNG about 40 pixels per byte); a file that decodes to far more is
# built to cost decoding time and memory. A request decodes at most EDUMOOD_MAX_BATCH_PIXELS.
EDUMOOD_MAX_PIXELS_PER_BYTE = env_int("EDUMOOD_MAX_PIXELS_PER_BYTE", 100)
EDUMOOD_MAX_BATCH_PIXELS = env_int("EDUMOOD_MAX_BATCH_PIXELS", 1_000_000_000)
EDUMOOD_MAX_DATASET_BYTES = env_int("EDUMOOD_MAX_DATASET_BYTES", 500 * 1024 * 1024)
DATA_UPLOAD_MAX_NUMBER_FILES = EDUMOOD_MAX_FILES_PER_BATCH + 1

EDUMOOD_DATA_DIR = Path(env_str("EDUMOOD_DATA_DIR", str(BASE_DIR.parent / "shared" / "data")))
EDUMOOD_DATASET_IMPORT_ROOT = Path(env_str("EDUMOOD_DATASET_IMPORT_ROOT", str(EDUMOOD_DATA_DIR)))
EDUMOOD_DEVICE = env_choice("EDUMOOD_DEVICE", ("auto", "cpu", "cuda"), "auto")
EDUMOOD_ADMIN_PASSWORD = env_str("EDUMOOD_ADMIN_PASSWORD", "")
# Torch threads per worker process. One by default: a worker runs several processes, and two
# OpenMP threads per process on a busy machine wait for each other (a 48x48 forward pass went
# from 3.7 ms to ~300 ms here). Raise it on a dedicated CPU training worker started with -c 1.
EDUMOOD_TORCH_THREADS = env_int("EDUMOOD_TORCH_THREADS", 1)

# Celery. The default broker is kombu's filesystem transport under var/: one command starts
# everything, no server to install. Production sets CELERY_BROKER_URL=redis://...
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # One folder per database, so two instances side by side never take each other's tasks.
    _db_key = hashlib.sha256(repr(sorted(DATABASES["default"].items())).encode()).hexdigest()
    _BROKER_DIR = VAR_DIR / "broker" / _db_key[:12]
    EDUMOOD_FOLDERS += [_BROKER_DIR / sub for sub in ("queue", "processed", "control")]
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_BROKER_DIR / "queue"),
        "data_folder_out": str(_BROKER_DIR / "queue"),
        "processed_folder": str(_BROKER_DIR / "processed"),
        "control_folder": str(_BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    # Unacknowledged tasks of a dead worker come back after this many seconds. Jobs guard
    # against running twice with their heartbeat, so a short timeout is safe.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
    }
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_INFERENCE_TIME_LIMIT = env_int("CELERY_INFERENCE_TIME_LIMIT", 300)
CELERY_TRAINING_TIME_LIMIT = env_int("CELERY_TRAINING_TIME_LIMIT", 12 * 3600)
# A running job whose heartbeat is older than this is taken to have lost its worker.
EDUMOOD_JOB_STALE_SECONDS = env_int("EDUMOOD_JOB_STALE_SECONDS", 120)
# The same for a photo analysis: its heartbeat beats every quarter of this and the sweep runs
# every half, so a photo abandoned by a dead worker is queued again within about 25 s.
EDUMOOD_PHOTO_STALE_SECONDS = env_int("EDUMOOD_PHOTO_STALE_SECONDS", 15)
# A queued row whose message went out this long ago and was not taken by a worker lost it: the
# sweep sends it again (a duplicate is harmless). Longer than a message waits in a healthy
# queue: the fair-share window keeps the inference queue short, and training jobs queued
# behind a long one get a spare message each period, which the claim turns away.
EDUMOOD_RESEND_SECONDS = env_int("EDUMOOD_RESEND_SECONDS", 300)
# Photos of one teacher in flight at once (sent to the broker or being analysed); the rest wait
# in the database and are sent as these finish, in turn with other teachers' photos. At least
# the number of inference worker processes, or one teacher alone leaves some idle.
EDUMOOD_FAIR_SHARE_WINDOW = env_int("EDUMOOD_FAIR_SHARE_WINDOW", 4)

# All periodic work, with its intervals (seconds). `celery beat` sends these (one beat per
# deployment; `manage.py runall` starts it), each also once as beat starts (edumood_site.celery).
# On the `inference` queue, whose workers take short tasks; a message not taken within its
# interval expires, so sweeps do not pile up while the workers are down or busy.
_SWEEP_SECONDS = max(1.0, min(EDUMOOD_JOB_STALE_SECONDS, EDUMOOD_PHOTO_STALE_SECONDS) / 2)
_LEFTOVER_SWEEP_SECONDS = max(60, EDUMOOD_UPLOAD_LEFTOVER_SECONDS)
CELERY_BEAT_SCHEDULE = {
    # Every kind of background work (jobs, photo analyses): rows whose worker died are queued
    # again, messages lost before or in the broker sent again, waiting rows sent as their
    # owners' windows allow (edumood_site.work.BackgroundWork.sweep). Every half of the
    # shortest stale limit: an abandoned photo is queued again within about 25 s.
    "sweep-background-work": {
        "task": "edumood_site.sweep_background_work",
        "schedule": _SWEEP_SECONDS,
        "options": {"queue": "inference", "expires": _SWEEP_SECONDS},
    },
    # What a crashed web process left: spooled request bodies, photo files without a row
    # (analytics.services.sweep_upload_leftovers), once per grace period.
    "sweep-upload-leftovers": {
        "task": "analytics.sweep_upload_leftovers",
        "schedule": _LEFTOVER_SWEEP_SECONDS,
        "options": {"queue": "inference", "expires": _LEFTOVER_SWEEP_SECONDS},
    },
    # Photos still stored in a form their classroom's retention setting no longer allows (its
    # task's message lost): the task is sent again (analytics.services.resend_pending_retention).
    "resend-pending-retention": {
        "task": "analytics.resend_pending_retention",
        "schedule": EDUMOOD_RESEND_SECONDS,
        "options": {"queue": "inference", "expires": EDUMOOD_RESEND_SECONDS},
    },
}
# Beat keeps its schedule in memory, not in a file: the intervals are short, and every entry
# runs as beat starts anyway.
CELERY_BEAT_SCHEDULER = "celery.beat:Scheduler"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.TokenAuthentication",  # first: anonymous gets 401, not 403
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "edumood_site.api.AutoSchema",
    "EXCEPTION_HANDLER": "edumood_site.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "uploads": env_rate("EDUMOOD_UPLOAD_RATE", "120/min"),
        "token": env_rate("EDUMOOD_TOKEN_RATE", "20/min"),
    },
    # Throttles identify anonymous clients by address; see EDUMOOD_TRUSTED_PROXIES.
    "NUM_PROXIES": EDUMOOD_TRUSTED_PROXIES,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "EduMood API",
    "DESCRIPTION": "Classroom expression analytics: sessions, photos, results, datasets, jobs, "
    "model versions and bias audits.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# http answered with a redirect to https: on with EDUMOOD_HTTPS (tests/prod turns it off on
# loopback, where no proxy terminates TLS).
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", EDUMOOD_HTTPS)
if EDUMOOD_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}

STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "edumood_site.staticfinders.PlotlyFinder",
]
