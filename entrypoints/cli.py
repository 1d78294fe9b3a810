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
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from entrypoints import compliance_commands, review_commands
from tripwire.common.config import ConfigError
from tripwire.common.home import from_home
from tripwire.data.quarantine import QuarantineLimitExceeded
from tripwire.review.store import ReviewError

# ConfigError covers bad config files and values and bad checkpoints (CheckpointError is one); ReviewError a
# refused review-store request (a bad reviewer name or role).
USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, FileNotFoundError, ReviewError)
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
    from tripwire.data.synthetic import CorpusSpec, generate_corpus

    defaults = CorpusSpec()
    spec = CorpusSpec(num_items=defaults.num_items if args.items is None else args.items,
                      seed=defaults.seed if args.seed is None else args.seed)
    print(generate_corpus(args.out, spec, progress=lambda done, total: done % 500 == 0 and print(
        f"[corpus] {done}/{total} items", flush=True)))
    return 0


def _ingest(args: argparse.Namespace) -> int:
    import json

    from tripwire.data.adapters import ADAPTERS, ingest

    if args.adapter not in ADAPTERS:
        raise ConfigError(f"--adapter: unknown adapter {args.adapter!r}; choose from {ADAPTERS.names()}")
    print(json.dumps(ingest(args.adapter, args.source, args.out, args.mapping, args.labels_file,
                            dedupe=not args.keep_duplicates), indent=2))
    return 0


def _train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tripwire.common.config import load_yaml
    from tripwire.training.config import TrainConfig

    cfg = load_yaml(TrainConfig, args.config).resolved(Path.cwd())  # fails here, before Ray, on a bad file
    from pipelines.train import run

    run(cfg)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from tripwire.model.checkpoint import CheckpointManifest

    checkpoint = from_home(args.checkpoint)
    manifest = CheckpointManifest.read(checkpoint)
    manifest.check_files()  # a wrong path fails here, before Ray and Serve start
    app_args: dict = {"checkpoint": checkpoint}
    if args.policy:  # else the checkpoint's recommended policy (or the bundled one)
        from tripwire.common.config import to_dict

        app_args["policy"] = to_dict(manifest.policy(args.policy))  # checked against the model's taxonomy here

    import time

    from ray import serve

    from deployments.app import build_app

    serve.start(http_options={"host": args.host, "port": args.port})
    serve.run(build_app(app_args), name="tripwire", route_prefix="/")
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
    run(make_job(args.checkpoint, args.manifest, args.out, args.policy, args.market, args.config, args.decision_log,
                 args.restart))
    return 0


def _golden(args: argparse.Namespace) -> int:
    from tripwire.evaluation.golden import catalogue_path, load_catalogue

    catalogue = args.catalogue
    if args.action == "list":
        sets = load_catalogue(catalogue).sets
        print(f"{len(sets)} golden set version(s) in {catalogue_path(catalogue)}")
        for golden in sets:
            print(f"  {golden.ref:28s} {golden.items:>7d} items  labels {','.join(golden.categories):30s} "
                  f"sha256 {golden.sha256[:12]}  {golden.source}")
        return 0
    from pipelines import golden_sets

    if args.action == "olid":
        golden, new = golden_sets.register_olid(args.olid, catalogue)
    elif args.action == "spoken-olid":
        from tripwire.data.spoken import SpeechRecipe

        golden, new = golden_sets.register_spoken_olid(args.olid, catalogue, args.limit, SpeechRecipe(seed=args.seed))
    elif args.action == "rendered-olid":
        from tripwire.data.rendered import RenderRecipe

        golden, new = golden_sets.register_rendered_olid(args.olid, catalogue, args.limit, RenderRecipe(seed=args.seed))
    elif args.action == "episodes":
        from tripwire.data.episodes import EpisodeRecipe

        recipe = EpisodeRecipe(episodes=args.episodes, minutes=args.minutes, seed=args.seed)
        golden, new = golden_sets.register_episodes(args.olid, catalogue, recipe, say=print)
    elif args.action == "heldout":
        if not args.checkpoint:
            raise ConfigError("golden heldout: --checkpoint is required")
        golden, new = golden_sets.register_heldout(from_home(args.checkpoint), args.name, catalogue)
    else:
        from tripwire.evaluation.golden import register
        from tripwire.policy import Taxonomy

        missing = [flag for flag, value in (("--name", args.name), ("--manifest", args.manifest),
                                            ("--source", args.source), ("--licence", args.licence),
                                            ("--provenance", args.provenance)) if not value]
        if missing:
            raise ConfigError(f"golden register: {', '.join(missing)} required")
        golden, new = register(args.name, args.manifest, Taxonomy.load(args.taxonomy).names, args.source,
                               args.licence, args.provenance, catalogue=catalogue)
    state = "registered" if new else "already registered (same content)"
    print(f"{golden.ref} {state}: {golden.items} items, labels {golden.categories}, sha256 {golden.sha256[:12]} "
          f"-> {catalogue_path(catalogue)}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from pipelines.evaluate import make_job, run

    run(make_job(from_home(args.checkpoint), args.golden, args.out, args.policy, args.catalogue, args.config))
    return 0


def _thresholds(args: argparse.Namespace) -> int:
    from pipelines.thresholds import make_job, run

    run(make_job(from_home(args.checkpoint), args.golden, args.out, args.work or f"{args.out}.eval", args.policy,
                 args.target, args.per_market, args.version, args.min_positives, args.catalogue, args.config))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from pipelines.compare import make_job, run

    report = run(make_job(from_home(args.baseline), from_home(args.candidate), args.golden, args.out,
                          args.baseline_policy, args.candidate_policy, args.gate, args.catalogue, args.config))
    return FAILED_EXIT if report["gate"] is not None and not report["gate"]["passed"] else 0


def _monitor(args: argparse.Namespace) -> int:
    from pipelines.monitor import run

    # run() loads the bars and reads both windows before computing; a bad path or file is a user error.
    return 0 if run(args.reference, args.current, args.out, args.bars)["ok"] else FAILED_EXIT


def _demo(args: argparse.Namespace) -> int:
    from entrypoints.demo import run

    return run(args.config, args.port, args.min_auc)


# Every command that opens the review store takes the same two options.
LOG_STORE_OPTION = opt("--store", help="the decision log: SQLite path or postgresql:// URL (default: the review "
                                       "store's, runs/review/review.db); audit: also a Parquet log's fsspec URI")
STORE_OPTIONS = [
    opt("--config", help="review settings YAML (deployments/configs/review/settings.yaml; default: built-in settings)"),
    opt("--store", help="review store: SQLite path or postgresql:// URL (default: the config's, runs/review/review.db)"),
]

# Every command that reads golden sets takes the same option.
CATALOGUE_OPTION = opt("--catalogue", help="golden-set catalogue YAML "
                                            "(default: $TRIPWIRE_GOLDEN_CATALOGUE or data/golden/catalogue.yaml)")

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
        opt("--policy", help="policy YAML (default: the checkpoint's recommended policy, else the bundled one)"),
        opt("--host", default="127.0.0.1", help="(default: %(default)s)"),
        opt("--port", type=_port, default=8000, help="(default: %(default)s)"),
    ]),
    "scan": Command(_scan, "score a catalogue manifest with Ray Data; results, review candidates -> Parquet", [
        opt("--checkpoint", required=True, help="checkpoint folder or fsspec URI"),
        opt("--manifest", required=True, help="catalogue manifest: JSONL or Parquet, any fsspec URI"),
        opt("--out", required=True, help="output folder (any fsspec URI); the same folder resumes a scan written with "
                                         "the same checkpoint, policy, manifest and market (others are refused)"),
        opt("--policy", help="policy YAML (default: the checkpoint's recommended policy, else the bundled one)"),
        opt("--market", help="decide every item for this market (default: each item's meta.market)"),
        opt("--config", help="scan config YAML: actors, batch sizes, CPUs/GPUs (pipelines/configs/scan.yaml)"),
        opt("--decision-log", help="append the scan's enforcement decisions to this decision log when it finishes: "
                                   "SQLite path, postgresql:// URL, or a Parquet folder on any fsspec URI"),
        opt("--restart", action="store_true",
            help="remove what an earlier scan wrote to --out and start over (to reuse an output written with "
                 "another checkpoint, policy, manifest or market)"),
    ]),
    "golden": Command(_golden, "register golden sets (versioned, content-hashed evaluation manifests) or list them", [
        opt("action", choices=["list", "register", "olid", "spoken-olid", "rendered-olid", "episodes", "heldout"],
            help="list; register a manifest; olid: the OLID test set; spoken-olid: its tweets read out by espeak-ng "
                 "(make speech-tools); rendered-olid: its tweets drawn into pictures (cards, memes, captions); episodes: minutes of its benign tweets spoken, some with an offensive one at a "
                 "recorded time; heldout: a checkpoint's validation split"),
        opt("--name", help="set name (register; heldout default: <run_name>-heldout)"),
        opt("--manifest", help="the set's JSONL manifest (register)"),
        opt("--source", help="where the items come from (register)"),
        opt("--licence", help="the items' licence (register)"),
        opt("--provenance", help="who labelled them, and how (register)"),
        opt("--taxonomy", help="taxonomy the labels must belong to (register; default: the bundled one)"),
        opt("--olid", default="../shared/datasets/olid", help="OLID v1.0 folder (olid; default: %(default)s)"),
        opt("--checkpoint", help="checkpoint whose validation split to register (heldout)"),
        opt("--limit", type=int, help="spoken-olid, rendered-olid: the first N tweets only (default: all 860)"),
        opt("--seed", type=int, default=0, help="spoken-olid, rendered-olid, episodes: the seed every draw is made with"),
        opt("--episodes", type=int, default=20, help="episodes: how many (half with an offensive tweet)"),
        opt("--minutes", type=float, default=3.0, help="episodes: each one's length"),
        CATALOGUE_OPTION,
    ]),
    "evaluate": Command(_evaluate, "metrics with confidence intervals of a checkpoint + policy on a golden set", [
        opt("--checkpoint", required=True, help="checkpoint folder or fsspec URI"),
        opt("--golden", required=True, help="golden set NAME or NAME@VERSION (see tripwire golden list)"),
        opt("--out", required=True, help="folder for metrics.json, report.html and the scoring scan"),
        opt("--policy", help="policy YAML (default: the checkpoint's recommended policy, else the bundled one)"),
        opt("--config", help="evaluation config YAML (pipelines/configs/evaluate.yaml)"),
        CATALOGUE_OPTION,
    ]),
    "thresholds": Command(_thresholds, "choose thresholds for target precision/recall on a golden set; write a new policy", [
        opt("--checkpoint", required=True, help="checkpoint folder or fsspec URI"),
        opt("--golden", required=True, help="validation golden set NAME or NAME@VERSION"),
        opt("--out", required=True, help="the new policy YAML (must not exist)"),
        opt("--policy", help="policy to start from (default: the checkpoint's)"),
        opt("--target", action="append",
            help="ACTION:METRIC=VALUE, repeatable (default: training's, tripwire.evaluation.thresholds.DEFAULT_TARGETS)"),
        opt("--per-market", action="store_true", help="also choose per-market overrides (items' meta.market)"),
        opt("--version", help="the new policy's version (default: <base>+tuned.<UTC time>)"),
        opt("--min-positives", type=int,
            help="fewer labelled positives: keep the category's thresholds "
                 "(default: training's, tripwire.evaluation.thresholds.DEFAULT_MIN_POSITIVES)"),
        opt("--work", help="folder for the scoring scan (default: <out>.eval)"),
        opt("--config", help="evaluation config YAML"),
        CATALOGUE_OPTION,
    ]),
    "compare": Command(_compare, "candidate vs baseline on golden sets (paired bootstrap) and the promotion gate", [
        opt("--baseline", required=True, help="production checkpoint"),
        opt("--candidate", required=True, help="candidate checkpoint (may be the same, with another policy)"),
        opt("--golden", required=True, action="append", help="golden set, repeatable"),
        opt("--out", required=True, help="folder for metrics.json, report.html and the scans"),
        opt("--baseline-policy", help="baseline's policy YAML (default: its checkpoint's)"),
        opt("--candidate-policy", help="candidate's policy YAML (default: its checkpoint's)"),
        opt("--gate", help="promotion bars YAML (pipelines/configs/gate.yaml); exit 1 when one fails"),
        opt("--config", help="evaluation config YAML"),
        CATALOGUE_OPTION,
    ]),
    "monitor": Command(_monitor, "drift of a window of results from a reference: score PSI, decision rates, modality mix", [
        opt("--reference", required=True, help="reference window: a scan output folder or a JSONL of served results"),
        opt("--current", required=True, help="window to check: a scan output folder or a JSONL of served results"),
        opt("--out", required=True, help="folder for monitor.json and monitor.html (any fsspec URI)"),
        opt("--bars", help="alarm bars YAML (default: those in pipelines/configs/monitor.yaml)"),
    ]),
    "review-ui": Command(review_commands.review_ui, "the reviewer web app (queue, labels, admin view) over the review store", [
        *STORE_OPTIONS,
        opt("--decision-log", help="log resolved items' outcomes and take appeals: the decision log's SQLite path "
                                   "or postgresql:// URL (usually the review store's; default: the config's, off)"),
        opt("--host", default="127.0.0.1", help="(default: %(default)s)"),
        opt("--port", type=_port, default=8300, help="(default: %(default)s)"),
    ]),
    "queue": Command(review_commands.queue, "the review queue: reviewers, scan candidates, active-learning samples, status", [
        opt("action", choices=["add-reviewer", "revoke", "add", "sample", "status", "check"],
            help="add-reviewer: print a new token; revoke: end a reviewer's token and every session of theirs; "
                 "add: a scan's review candidates (--golden: hidden golden items); "
                 "sample: active learning over a scan; status; check: the store's consistency"),
        opt("--name", help="reviewer name (add-reviewer, revoke)"),
        opt("--role", choices=["reviewer", "admin"], default="reviewer", help="(add-reviewer; default: %(default)s)"),
        opt("--days", type=float, help="token lifetime in days (add-reviewer; default: the review config's)"),
        opt("--scan", help="a tripwire scan output folder (add, sample)"),
        opt("--manifest", help="the manifest the scan read (default: the one its summary names)"),
        opt("--golden", action="store_true", help="add: every scanned item, as hidden golden items labelled by the manifest"),
        opt("--batch", help="batch name recorded on the queued items"),
        opt("--checkpoint", help="sample: the scan's checkpoint (its policy's thresholds)"),
        opt("--policy", help="sample: the policy whose thresholds define uncertainty"),
        opt("--total", type=int, default=100, help="sample: items in all, split over categories (default: %(default)s)"),
        opt("--budget", action="append", help="sample: CATEGORY=COUNT, repeatable (instead of --total)"),
        opt("--strategy", default="uncertainty+diversity",
            help="sample: uncertainty, margin, disagreement (with --second-checkpoint or --second-scan), diversity, "
                 "uncertainty+diversity or random (default: %(default)s)"),
        opt("--second-checkpoint", help="sample, disagreement: the second model; it scans the scan's manifest "
                                        "(into --second-out) and items where the two models' scores differ most are picked"),
        opt("--second-out", help="sample: where --second-checkpoint's scan goes (default: <scan>.second-<model hash>; "
                                 "run again, it resumes)"),
        opt("--second-scan", help="sample, disagreement: the second model's scan output of the same manifest "
                                  "(instead of --second-checkpoint)"),
        opt("--pool-factor", type=int, default=5, help="sample: diversity clusters over this many x budget items"),
        opt("--reach-field", help="sample: the manifest's meta field that raises priority by reach (e.g. views)"),
        opt("--seed", type=int, default=0, help="sample: random seed"),
        opt("--show", type=int, default=20, help="sample: picks to print"),
        opt("--enqueue", action="store_true", help="sample: queue the picks (default: only print them)"),
        *STORE_OPTIONS,
    ]),
    "feedback": Command(review_commands.feedback, "reviewed items -> a versioned training snapshot (no golden-set overlap)", [
        opt("action", choices=["export"], help="export: write the next snapshot"),
        opt("--out", default="runs/feedback", help="folder of feedback-v<N>/ snapshots (default: %(default)s)"),
        CATALOGUE_OPTION,
        *STORE_OPTIONS,
    ]),
    "loop": Command(review_commands.loop, "scan -> sample -> review -> export -> retrain -> evaluate -> gate (one round)", [
        opt("--config", required=True, help="loop config YAML (pipelines/configs/loop.yaml)"),
        opt("--round", help="round name (default: the config's)"),
        opt("--reviews", choices=["wait", "stop"], help="wait for the reviews, or stop after queueing (default: the config's)"),
        opt("--store", help="review store: SQLite path or postgresql:// URL (default: the config's)"),
    ]),
    "audit": Command(compliance_commands.audit, "the tamper-evident decision log: verify, sign a checkpoint, prune, log a scan", [
        opt("action", choices=["verify", "checkpoint", "prune", "log-scan"],
            help="verify: walk the chain and its checkpoints (exit 1 at the first bad record); checkpoint: sign "
                 "and print the head; prune: retention (up to the newest checkpoint older than it); log-scan: a "
                 "scan's enforcement decisions into the log"),
        LOG_STORE_OPTION,
        opt("--head", help="verify: SEQ:SHA256 of a head published earlier: also catches records dropped from the end"),
        opt("--key-file", help="checkpoint signing key file (default: the TRIPWIRE_LOG_KEY environment variable)"),
        opt("--retention-days", type=float, help="prune: keep this many days of records"),
        opt("--scan", help="log-scan: a tripwire scan output folder"),
        opt("--policy", help="log-scan: the policy the scan applied (its thresholds are logged)"),
        opt("--include-allowed", action="store_true", help="log-scan: log allowed items too"),
    ]),
    "compliance": Command(compliance_commands.compliance, "DSA statements of reasons, transparency reports, appeals", [
        opt("action", choices=["sor", "report", "appeal", "sync"],
            help="sor: statements of reasons for restrictive decisions (API batches of <= 100); report: a transparency "
                 "report (HTML with plots + CSV); appeal: file a user's appeal of a decision; sync: log reviewer "
                 "outcomes not logged yet"),
        LOG_STORE_OPTION,
        opt("--from", dest="from_date", help="sor, report: first day (YYYY-MM-DD, UTC)"),
        opt("--to", dest="to_date", help="sor, report: last day, inclusive"),
        opt("--out", help="sor, report: output folder"),
        opt("--scan-log", action="append", help="sor, report: a scan's Parquet decision log (fsspec URI) read with "
                                                "--store, repeatable"),
        opt("--mapping", help="sor: taxonomy -> DSA mapping YAML (default: the bundled one)"),
        opt("--puid", help="appeal: the decision's puid"),
        opt("--statement", help="appeal: the user's reasons"),
        opt("--review-store", help="appeal, sync: the review store (default: --store)"),
        opt("--config", help="appeal, sync: review settings YAML (taxonomy, policy)"),
    ]),
    "demo": Command(_demo, "corpus, train, serve, HTTP checks and a scan, end to end on local Ray", [
        opt("--config", default="pipelines/configs/demo.yaml", help="training config (default: %(default)s)"),
        opt("--port", type=_port, default=8000, help="HTTP port (default: %(default)s)"),
        opt("--min-auc", type=float, default=0.8,
            help="fail unless every category reaches this held-out ROC-AUC (unseen signature variants)"),
    ]),
}


class _CommandListFormatter(argparse.HelpFormatter):
    """argparse measures command names one indent short of where it prints them, so a long name
    (``thresholds``) would push its help to the next line; this counts the indent they are printed at."""

    def add_argument(self, action: argparse.Action) -> None:
        super().add_argument(action)
        if isinstance(action, argparse._SubParsersAction):
            longest = max((len(name) for name in action.choices), default=0)
            self._action_max_length = max(self._action_max_length,
                                          longest + self._current_indent + self._indent_increment)


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The top-level parser and each command's own."""
    parser = _Parser(prog="tripwire", description="Tripwire: multimodal content safety on Ray.",
                     formatter_class=_CommandListFormatter,
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
