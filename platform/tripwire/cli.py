"""The ``tripwire`` command: generate a corpus, train, serve, or run the whole demo."""

from __future__ import annotations

import argparse
import sys


def _generate(argv: list[str]) -> int:
    from tripwire.synthetic import CorpusSpec, generate_corpus

    parser = argparse.ArgumentParser(prog="tripwire generate", description="write the synthetic corpus")
    parser.add_argument("--out", default="data/synthetic")
    parser.add_argument("--items", type=int, default=CorpusSpec.num_items)
    parser.add_argument("--seed", type=int, default=CorpusSpec.seed)
    args = parser.parse_args(argv)
    manifest = generate_corpus(args.out, CorpusSpec(num_items=args.items, seed=args.seed), progress=True)
    print(manifest)
    return 0


def _ingest(argv: list[str]) -> int:
    import json

    from tripwire.adapters import ADAPTERS, ingest

    parser = argparse.ArgumentParser(prog="tripwire ingest", description="convert a public dataset to a manifest")
    parser.add_argument("--adapter", required=True, choices=ADAPTERS.names())
    parser.add_argument("--source", required=True, help="dataset file (any fsspec URI)")
    parser.add_argument("--out", required=True, help="manifest to write (.jsonl)")
    parser.add_argument("--mapping", help="label mapping YAML (default: the adapter's bundled one)")
    parser.add_argument("--labels-file", help="separate gold labels (OLID test sets)")
    parser.add_argument("--keep-duplicates", action="store_true", help="keep exact duplicates (official test sets)")
    args = parser.parse_args(argv)
    print(json.dumps(ingest(args.adapter, args.source, args.out, args.mapping, args.labels_file,
                            dedupe=not args.keep_duplicates), indent=2))
    return 0


def _train(argv: list[str]) -> int:
    from pipelines.train import main

    main(argv)
    return 0


def _serve(argv: list[str]) -> int:
    import time

    from ray import serve

    from deployments.app import build_app

    parser = argparse.ArgumentParser(prog="tripwire serve", description="serve a checkpoint over HTTP")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    serve.start(http_options={"host": args.host, "port": args.port})
    serve.run(build_app({"checkpoint": args.checkpoint}), name="tripwire", route_prefix="/")
    print(f"serving on http://{args.host}:{args.port} (Ctrl-C to stop)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()
    return 0


def _demo(argv: list[str]) -> int:
    from pipelines.demo import main

    return main(argv)


COMMANDS = {"generate": _generate, "ingest": _ingest, "train": _train, "serve": _serve, "demo": _demo}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: tripwire {{{','.join(COMMANDS)}}} [options]   (tripwire COMMAND --help)", file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
