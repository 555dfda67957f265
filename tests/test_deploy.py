"""deploy/docker-compose.yml is the layout `make test-prod` runs on loopback (no containers or
GPUs where the tests run): the same processes, the same settings, nothing shared on disk."""

import re

import yaml

from tests.conftest import ROOT
from tests.prod.stack import HOSTS
from tests.s3 import S3Server
from tests.test_foundation import settings_variables

DEPLOY = ROOT / "deploy"


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def env_file(name: str) -> dict[str, str]:
    lines = (DEPLOY / name).read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if re.match(r"^[A-Z][A-Z0-9_]*=", line))


def test_the_compose_file_starts_the_hosts_the_loopback_stack_starts_and_shares_no_disk():
    services = compose()["services"]
    edumood = {
        name for name, service in services.items() if service.get("image") == "edumood:latest"
    }
    assert edumood == set(HOSTS)
    for name in edumood:
        assert "volumes" not in services[name], f"{name} must share nothing on disk"
        assert services[name]["env_file"] == "edumood.env"
    assert services["web"]["command"].split("exec ")[1].startswith("gunicorn edumood_site.wsgi")
    for queue in ("inference", "training"):
        command = services[f"worker-{queue}"]["command"]
        assert command.startswith(f"celery -A edumood_site worker -Q {queue} ")
    assert " -c 1 " in services["worker-training"]["command"]
    assert services["beat"]["command"].startswith("celery -A edumood_site beat ")
    assert services["worker-training"]["gpus"] == "all"
    assert {"postgres", "redis", "minio"} <= set(services)


def test_the_compose_settings_are_the_settings_the_loopback_stack_uses():
    settings = env_file("edumood.env.example")
    assert set(settings) <= settings_variables()  # no name the settings do not read
    storage = {name for name in settings if name.startswith(("EDUMOOD_STORAGE", "EDUMOOD_S3_"))}
    assert storage == set(S3Server(ROOT / "unused.log").env("bucket"))
    assert settings["EDUMOOD_STORAGE"] == "s3" and settings["EDUMOOD_S3_ADDRESSING_STYLE"] == "path"
    for name in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL"):
        assert name in settings  # the services the hosts share, set as test-prod sets them
