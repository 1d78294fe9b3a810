"""What an evaluation costs as the golden set grows: wall time (scoring scan and metrics apart) and the
driver's peak memory, for 1k and 10k real tweets (OLID's training file, text only) on one checkpoint.

    .venv/bin/python -m bench.bench_evaluate --checkpoint runs/demo/model [--sizes 1000 10000]

Each size runs in its own process (a clean peak RSS), registers its set in a scratch catalogue and runs
``tripwire evaluate`` end to end with the default settings (1000 bootstrap resamples, six slice specs).
Writes bench/results/evaluate.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def one(checkpoint: str, manifest: str, size: int, work: str) -> dict:
    """Runs in a child process: one evaluation of the first ``size`` rows."""
    import ray

    from pipelines.evaluate import make_job, run
    from tripwire.evaluation.golden import register
    from tripwire.policy import Taxonomy

    rows = Path(work) / f"golden-{size}.jsonl"
    with open(manifest, encoding="utf-8") as source, open(rows, "w", encoding="utf-8") as out:
        for i, line in enumerate(source):
            if i == size:
                break
            out.write(line)
    catalogue = str(Path(work) / "catalogue.yaml")
    golden, _ = register(f"bench-{size}", str(rows), Taxonomy.load().names, "OLID training tweets", "CC BY 4.0",
                         "OLID", catalogue=catalogue)
    ray.init(num_cpus=os.cpu_count(), log_to_driver=False, logging_level="WARNING")
    started = time.perf_counter()
    report = run(make_job(checkpoint, golden.ref, str(Path(work) / f"eval-{size}"), catalogue=catalogue,
                          config=str(REPO / "pipelines/configs/evaluate.yaml")))
    wall = time.perf_counter() - started
    ray.shutdown()
    return {"items": report["scored"], "wall_s": round(wall, 1), "scoring_wall_s": report["scoring_wall_s"],
            "metrics_wall_s": round(wall - report["scoring_wall_s"], 1),
            "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "slices": len(report["slices"])}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default=str(REPO / "runs/demo/model"))
    parser.add_argument("--olid", default=str(REPO.parent / "shared/datasets/olid/olid-training-v1.0.tsv"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(one(args.checkpoint, args.child[0], int(args.child[1]), args.child[2])), flush=True)
        return {}

    from tripwire.data.adapters import ingest

    with tempfile.TemporaryDirectory() as work:
        manifest = str(Path(work) / "olid.jsonl")
        ingest("olid", args.olid, manifest)
        figures = []
        for size in args.sizes:
            done = subprocess.run([sys.executable, "-m", "bench.bench_evaluate", "--checkpoint", args.checkpoint,
                                   "--child", manifest, str(size), work], cwd=REPO, capture_output=True, text=True)
            line = next((l for l in done.stdout.splitlines() if l.startswith("RESULT ")), None)
            if line is None:
                raise SystemExit(f"size {size} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
            figures.append(json.loads(line[len("RESULT "):]))
            print(json.dumps(figures[-1]), flush=True)
    result = {"checkpoint": args.checkpoint, "sizes": figures,
              "command": "python -m bench.bench_evaluate " + " ".join(argv or sys.argv[1:])}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "evaluate.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
