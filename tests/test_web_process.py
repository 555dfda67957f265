"""What a web process loads: the URL tree must not pull in torch (about 470 MB and 6 s)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_importing_the_url_tree_leaves_torch_out():
    code = (
        "import sys, django; django.setup(); import edumood_site.urls; "
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))[:3])"
    )
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "edumood_site.settings", "DEBUG": "true"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout
