"""An S3-compatible server on loopback for EDUMOOD_STORAGE=s3: moto's standalone server.

Production uses MinIO, Ceph's RADOS gateway or a cloud bucket with the same settings
(EDUMOOD_S3_*); moto speaks the same S3 API and installs from PyPI (requirements-dev.txt), so
the tests and `make test-prod` run the storage the deployment runs, over HTTP. Used by the
`s3` fixture (tests/conftest.py), tests/prod/stack.py and benchmarks/prod_load.py.
"""

import secrets
import subprocess
import sys
from pathlib import Path

import requests

from tests.conftest import free_port, wait_until

ACCESS_KEY = "edumood-test"
SECRET_KEY = "edumood-test-secret"
REGION = "us-east-1"


class S3Server:
    """`start()`, then `bucket()` for a fresh empty bucket; always `stop()`."""

    def __init__(self, log: Path):
        self.log = log
        self.url = ""
        self.process: subprocess.Popen | None = None

    def start(self) -> "S3Server":
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip

        def answers() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto's S3 server exited:\n{self.log.read_text()[-2000:]}")
            try:
                return requests.get(self.url, timeout=2).status_code < 500
            except requests.RequestException:
                return False

        wait_until(answers, 60, interval=0.3, message="the S3 server to answer")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.url, aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY, region_name=REGION,
            config=Config(s3={"addressing_style": "path"}),
        )  # fmt: skip

    def bucket(self) -> str:
        """A new, empty, private bucket (as an operator makes it: no policy, no public ACL)."""
        name = f"edumood-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = (
            self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        )
        return sorted(item["Key"] for page in pages for item in page.get("Contents", ()))

    def env(self, bucket: str) -> dict[str, str]:
        """The settings' environment variables for this server and bucket."""
        return {
            "EDUMOOD_STORAGE": "s3",
            "EDUMOOD_S3_ENDPOINT_URL": self.url,
            "EDUMOOD_S3_BUCKET": bucket,
            "EDUMOOD_S3_ACCESS_KEY_ID": ACCESS_KEY,
            "EDUMOOD_S3_SECRET_ACCESS_KEY": SECRET_KEY,
            "EDUMOOD_S3_REGION": REGION,
            "EDUMOOD_S3_ADDRESSING_STYLE": "path",
        }
