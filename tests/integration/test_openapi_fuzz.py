"""The OpenAPI document says exactly what the server accepts and answers: schemathesis, with every check,
against the document the real Serve app serves. No schema-valid request refused (media fields carry real
media: tests/schemathesis_hooks.py), every invalid one refused, no undocumented status code, content type,
header or body, no 5xx, and unsupported methods answered 405 with ``Allow``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from helpers import REPO

# Per operation (8: the three scoring POSTs, the job POST, and the four GETs), on top of the coverage phase's own
# boundary cases: the whole run takes ~35 s against the tiny model on 2 cores.
MAX_EXAMPLES = 25


def test_schemathesis_finds_nothing(served, serve_endpoint, tmp_path):
    import numpy as np
    import soundfile

    url, _ = served
    st = Path(sys.executable).with_name("st")
    # The job API takes media by allow-listed URI: a short clip there for the fuzzer's jobs.
    clip = serve_endpoint["long_media"] / "fuzz.flac"
    soundfile.write(str(clip), (0.1 * np.sin(np.arange(32000) / 16000 * 2 * np.pi * 330)).astype(np.float32), 16000)
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks", "TRIPWIRE_FUZZ_MEDIA_URIS": f"file://{clip}",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "tests"), os.environ.get("PYTHONPATH")]))}
    command = [str(st), "--config-file", str(REPO / "tests" / "schemathesis.toml"), "run", f"{url}/openapi.json",
               "--checks", "all", "--max-examples", str(MAX_EXAMPLES),
               # One request at a time: the app shares the machine's 2 cores with the fuzzer.
               "--workers", "1", "--request-timeout", "60", "--generation-database", "none", "--no-color"]
    # A failing run prints its seed; TRIPWIRE_FUZZ_SEED=<seed> replays that run's cases.
    if os.environ.get("TRIPWIRE_FUZZ_SEED"):
        command += ["--seed", os.environ["TRIPWIRE_FUZZ_SEED"]]
    done = subprocess.run(command, capture_output=True, text=True, timeout=420, cwd=tmp_path, env=env)
    # On failure the output names each finding with a curl line to reproduce it, and the run's seed.
    assert done.returncode == 0, done.stdout[-12_000:] + done.stderr[-4_000:]
    assert "No issues found" in done.stdout, done.stdout[-4_000:]
    # Every operation in the document was exercised (the scoring POSTs, the job API and the GETs).
    selected = re.search(r"Selected: (\d+)/(\d+)", done.stdout)
    tested = re.search(r"Tested: (\d+)", done.stdout)
    assert selected and tested and int(tested[1]) == int(selected[1]) == int(selected[2]) >= 8, done.stdout[-4_000:]
