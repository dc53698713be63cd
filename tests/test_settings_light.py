"""Control commands (status, stop, prompt, config) read the settings: they load no model code."""

import json
import subprocess
import sys

HEAVY = ("torch", "cv2", "scipy", "transformers")


def test_importing_the_settings_loads_no_model_code() -> None:
    code = (
        "import json, sys; import pipeline.settings; "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []
