"""What a web process loads: the URL tree must not pull in torch (about 470 MB and 6 s)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _torch_modules_after(code: str) -> str:
    """The torch modules loaded (at most 3) once `code` ran in a fresh Django process."""
    code = (
        f"import sys, django; django.setup(); {code}; "
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))[:3])"
    )
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "edumood_site.settings", "DEBUG": "true"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_importing_the_url_tree_leaves_torch_out():
    assert _torch_modules_after("import edumood_site.urls") == "[]"


def test_making_a_stored_copy_leaves_torch_out():
    # The web process makes protected copies itself (a teacher tightening retention).
    code = (
        "import analytics.services.consent; from PIL import Image; "
        "from ml.privacy import protected_copy; from ml.safety import open_image; "
        "protected_copy(Image.new('RGB', (64, 48)), [(8, 8, 16, 16)])"
    )
    assert _torch_modules_after(code) == "[]"
