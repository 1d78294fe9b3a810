"""The ``tripwire`` command: generate a corpus, ingest a dataset, train, serve, or run the whole demo.

``tripwire --help`` lists the commands; ``tripwire COMMAND --help`` gives a command's options.

A user's mistake (a bad option, a config value of the wrong type, a missing file, a path that is not a
checkpoint) ends as one line on stderr, ``tripwire COMMAND: error: MESSAGE``, with exit status 2, found
before Ray starts; :data:`USER_ERRORS` are the exceptions that count as such. Anything else is a bug and
keeps its traceback.

Adding a command (``scan``, say) takes one function and one table entry::

    def _scan(args: argparse.Namespace) -> int:
        from pipelines.scan import run          # imports inside: ``tripwire --help`` stays fast
        run(args.config)
        return 0

    COMMANDS["scan"] = Command(_scan, "score a manifest and write decisions",
                               [opt("--config", required=True, help="scan config YAML")])

Validate what the user gave before anything slow starts (load the config, read the checkpoint
manifest), and raise one of :data:`USER_ERRORS` with a message that names the field or path.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from tripwire.config import ConfigError
from tripwire.quarantine import QuarantineLimitExceeded

# ConfigError covers bad config files and values and bad checkpoints (CheckpointError is one).
USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, FileNotFoundError)
USAGE_EXIT = 2  # argparse's status for usage errors; config errors are usage errors too
FAILED_EXIT = 1  # the job ran and failed for a stated reason (too many bad rows)


@dataclass(frozen=True)
class Option:
    """One ``add_argument`` call: flags and keyword arguments."""

    flags: tuple[str, ...]
    kwargs: dict[str, Any]


def opt(*flags: str, **kwargs: Any) -> Option:
    return Option(flags, kwargs)


@dataclass(frozen=True)
class Command:
    """A subcommand: what runs, its one-line help, its options."""

    run: Callable[[argparse.Namespace], int]
    help: str
    options: list[Option] = field(default_factory=list)


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error as the same one line as every other user error."""

    def error(self, message: str):
        self.exit(USAGE_EXIT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _port(text: str) -> int:
    port = int(text)
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (1-65535)")
    return port


def _generate(args: argparse.Namespace) -> int:
    from tripwire.synthetic import CorpusSpec, generate_corpus

    defaults = CorpusSpec()
    spec = CorpusSpec(num_items=defaults.num_items if args.items is None else args.items,
                      seed=defaults.seed if args.seed is None else args.seed)
    print(generate_corpus(args.out, spec, progress=True))
    return 0


def _ingest(args: argparse.Namespace) -> int:
    import json

    from tripwire.adapters import ADAPTERS, ingest

    if args.adapter not in ADAPTERS:
        raise ConfigError(f"--adapter: unknown adapter {args.adapter!r}; choose from {ADAPTERS.names()}")
    print(json.dumps(ingest(args.adapter, args.source, args.out, args.mapping, args.labels_file,
                            dedupe=not args.keep_duplicates), indent=2))
    return 0


def _train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tripwire.config import load_yaml
    from tripwire.train_config import TrainConfig

    cfg = load_yaml(TrainConfig, args.config).resolved(Path.cwd())  # fails here, before Ray, on a bad file
    from pipelines.train import run

    run(cfg)
    return 0


def _checkpoint_path(path: str) -> str:
    """Relative checkpoint paths are taken from TRIPWIRE_HOME (default: the current directory), as in the
    Serve config; the absolute result goes to the app, so both resolve it alike."""
    if "://" in path or os.path.isabs(path):
        return path
    return os.path.abspath(os.path.join(os.environ.get("TRIPWIRE_HOME", os.getcwd()), path))


def _serve(args: argparse.Namespace) -> int:
    from tripwire.checkpoint import CheckpointManifest

    checkpoint = _checkpoint_path(args.checkpoint)
    CheckpointManifest.read(checkpoint).check_files()  # a wrong path fails here, before Ray and Serve start

    import time

    from ray import serve

    from deployments.app import build_app

    serve.start(http_options={"host": args.host, "port": args.port})
    serve.run(build_app({"checkpoint": checkpoint}), name="tripwire", route_prefix="/")
    print(f"serving on http://{args.host}:{args.port} (Ctrl-C to stop)")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        serve.shutdown()
    return 0


def _scan(args: argparse.Namespace) -> int:
    from pipelines.scan import make_job, run

    # run() checks the checkpoint, the manifest and the policy before Ray starts.
    run(make_job(args.checkpoint, args.manifest, args.out, args.policy, args.market, args.config))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from entrypoints.demo import run

    return run(args.config, args.port, args.min_auc)


COMMANDS: dict[str, Command] = {
    "generate": Command(_generate, "write the synthetic corpus (every modality)", [
        opt("--out", default="data/synthetic", help="output folder (default: %(default)s)"),
        opt("--items", type=int, help="number of items (default: the corpus spec's, 2400)"),
        opt("--seed", type=int, help="random seed (default: the corpus spec's)"),
    ]),
    "ingest": Command(_ingest, "convert a public dataset to a Tripwire manifest", [
        opt("--adapter", required=True, help="dataset adapter (olid, davidson, jigsaw, hateful_memes, esc50, ...)"),
        opt("--source", required=True, help="dataset file (any fsspec URI)"),
        opt("--out", required=True, help="manifest to write (.jsonl)"),
        opt("--mapping", help="label mapping YAML (default: the adapter's bundled one)"),
        opt("--labels-file", help="separate gold labels (OLID test sets)"),
        opt("--keep-duplicates", action="store_true", help="keep exact duplicates (official test sets)"),
    ]),
    "train": Command(_train, "train with Ray Data + Ray Train; best checkpoint -> export_dir", [
        opt("--config", required=True, help="training config YAML (pipelines/configs/*.yaml)"),
    ]),
    "serve": Command(_serve, "serve a checkpoint over HTTP with Ray Serve", [
        opt("--checkpoint", required=True, help="checkpoint folder or fsspec URI"),
        opt("--host", default="127.0.0.1", help="(default: %(default)s)"),
        opt("--port", type=_port, default=8000, help="(default: %(default)s)"),
    ]),
    "scan": Command(_scan, "score a catalogue manifest with Ray Data; results, review candidates -> Parquet", [
        opt("--checkpoint", required=True, help="checkpoint folder or fsspec URI"),
        opt("--manifest", required=True, help="catalogue manifest: JSONL or Parquet, any fsspec URI"),
        opt("--out", required=True, help="output folder (any fsspec URI); the same folder resumes a scan"),
        opt("--policy", help="policy YAML (default: the bundled policy)"),
        opt("--market", help="decide every item for this market (default: each item's meta.market)"),
        opt("--config", help="scan config YAML: actors, batch sizes, CPUs/GPUs (pipelines/configs/scan.yaml)"),
    ]),
    "demo": Command(_demo, "corpus, train, serve, HTTP checks and a scan, end to end on local Ray", [
        opt("--config", default="pipelines/configs/demo.yaml", help="training config (default: %(default)s)"),
        opt("--port", type=_port, default=8000, help="HTTP port (default: %(default)s)"),
        opt("--min-auc", type=float, default=0.95, help="fail unless every category reaches this ROC-AUC"),
    ]),
}


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser and each command's own."""
    parser = _Parser(prog="tripwire", description="Tripwire: multimodal content safety on Ray.",
                     epilog="Run 'tripwire COMMAND --help' for a command's options.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands", parser_class=_Parser)
    subparsers = {}
    for name, command in COMMANDS.items():
        subparsers[name] = sub = commands.add_parser(name, help=command.help, description=command.help)
        for option in command.options:
            sub.add_argument(*option.flags, **option.kwargs)
    return parser, subparsers


def _one_line(exc: BaseException) -> str:
    # A YAML error spans lines (the mark and a caret); the message must stay one line.
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    parser, subparsers = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        parser.print_help(sys.stderr)
        return USAGE_EXIT
    args, extra = parser.parse_known_args(argv)
    if extra:  # argparse would blame the top-level parser; the command's own is the one to name
        subparsers[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    prog = f"tripwire {args.command}"
    try:
        return COMMANDS[args.command].run(args)
    except USER_ERRORS as exc:
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return USAGE_EXIT
    except QuarantineLimitExceeded as exc:
        print(f"{prog}: error: {_one_line(exc)}", file=sys.stderr)
        return FAILED_EXIT
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
