"""`python -m training train | demo | compare | retrain | label`."""

from __future__ import annotations

import argparse
import ast
import logging
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from model_store import StoreError, open_store
from training.augment import random_affine
from training.compare import DATASETS, DEFAULT_EPOCHS, ComparePlan, default_archs, run_compare
from training.compare_report import Provenance as CompareProvenance
from training.compare_report import machine_description, write_report
from training.data import load_dataset
from training.export import ParityError
from training.label import label_shards
from training.pipeline import CHECKPOINT_FILE, Trained, package, train_model
from training.publish import Provenance, UnchangedArtifactError, publish_run
from training.recipe import Recipe
from training.retrain import ALPHA, retrain
from training.shards_data import data_fingerprint
from training.trainer import TrainConfig
from training.variants import Precision

log = logging.getLogger("training")

# Exit statuses of the commands that may publish: retrain's contract (training/README.md).
EXIT_PUBLISHED, EXIT_ERROR, EXIT_KEPT = 0, 1, 3

# Under .cache/ (git-ignored): run directories are scratch, the store is where results live.
RUNS_DIR = Path(".cache/training")


@dataclass(frozen=True)
class DemoModel:
    name: str  # part of the contract: tests, benchmarks and `make serve` use these names
    arch: str
    dataset: str
    config: TrainConfig


# Settings chosen to finish all four in well under 5 minutes on 2 CPU cores.
DEMO_MODELS = (
    DemoModel("cnn", "cnn", "mnist", TrainConfig(epochs=6, lr=2e-3)),
    DemoModel("resnet", "resnet", "mnist", TrainConfig(epochs=6, lr=5e-3)),
    DemoModel("gru", "gru", "japanese_vowels", TrainConfig(epochs=25, batch_size=32, lr=5e-3)),
    DemoModel(
        "transformer", "transformer", "japanese_vowels", TrainConfig(epochs=25, batch_size=32)
    ),
)


def _model_option(text: str) -> tuple[str, Any]:
    """KEY=VALUE, the value read as a Python literal when it is one (`depth=20`, `cell='lstm'`)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    try:
        return key, ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return key, raw


def _train_config(args: argparse.Namespace, checkpoint: Path | None = None) -> TrainConfig:
    return TrainConfig(
        augment=random_affine if getattr(args, "augment", False) else None,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        patience=args.patience,
        seed=args.seed,
        device=args.device,
        checkpoint_path=checkpoint,
    )


def cmd_train(args: argparse.Namespace) -> int:
    data = load_dataset(args.dataset)
    if args.augment and data.kind != "image":
        raise SystemExit("--augment applies to image datasets only")
    name = args.name or f"{args.arch}-{Path(args.dataset).stem}".lower().replace("_", "-")
    out_dir = Path(args.out or RUNS_DIR / name)
    out_dir.mkdir(parents=True, exist_ok=True)
    trained = train_model(
        args.arch,
        data,
        _train_config(args, out_dir / CHECKPOINT_FILE),
        dict(args.model_options),
        args.val_fraction,
    )
    variants: tuple[Precision, ...] = () if args.no_variants else ("fp16", "int8")
    run = package(trained, out_dir, variants)
    log.info("run directory: %s", out_dir)
    if args.publish:
        provenance = _provenance(trained, args.dataset, args.val_fraction, variants)
        try:
            publish_run(args.publish, name, run, args.max_batch_size, provenance)
        except UnchangedArtifactError as exc:
            print(exc)
            return EXIT_KEPT
    return EXIT_PUBLISHED


def _provenance(
    trained: Trained, dataset: str, val_fraction: float, variants: tuple[Precision, ...]
) -> Provenance:
    """What a plain `train --publish` or `demo` records, so that a retrain can start from it."""
    recipe = Recipe.of(
        trained.arch, dataset, trained.train_config, trained.model_config, val_fraction, variants
    )
    # The trainer's dataset is the base set as loaded: no shards.
    return Provenance(recipe, data_fingerprint(trained.dataset, []))


def cmd_demo(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    present = set(store.list_models())
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="inductive-demo-") as tmp:
        for demo in DEMO_MODELS:
            if demo.name in present and not args.force:
                log.info("%s is already in the store; skipping (--force retrains)", demo.name)
                continue
            trained = train_model(demo.arch, load_dataset(demo.dataset), demo.config)
            run = package(trained, Path(tmp) / demo.name)
            provenance = _provenance(trained, demo.dataset, 0.1, ("fp16", "int8"))
            try:
                publish_run(store, demo.name, run, provenance=provenance)
            except UnchangedArtifactError as exc:
                log.info("%s", exc)
    log.info("demo models ready in %.0f s", time.perf_counter() - start)
    return 0


def _compare_options(args: argparse.Namespace) -> list[str]:
    """The options that reproduce this compare run, spelled out in full (defaults included)."""
    options = ["--seeds", ",".join(map(str, args.seeds)), "--datasets", *args.datasets]
    options += ["--archs", *args.archs]
    for flag, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size)):
        if value is not None:
            options += [flag, str(value)]
    options += ["--lr", str(args.lr), "--patience", str(args.patience), "--out", args.out]
    return options


def cmd_compare(args: argparse.Namespace) -> int:
    plan = ComparePlan(
        datasets=tuple(args.datasets),
        archs=tuple(args.archs),
        seeds=tuple(args.seeds),
        base_config=TrainConfig(
            lr=args.lr, patience=args.patience, device=args.device, progress=False
        ),
        epochs=args.epochs,
        batch_size=args.batch_size,
    )
    provenance = CompareProvenance(
        command="python -m training compare " + shlex.join(_compare_options(args)),
        started_utc=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=machine_description(),
        note=args.note,
    )
    try:
        outcome = run_compare(plan)
    except ValueError as error:
        raise SystemExit(f"compare: {error}") from None
    for path in write_report(Path(args.out), plan, outcome, provenance):
        log.info("wrote %s", path)
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    result = retrain(
        open_store(args.store),
        args.model,
        args.data,
        epochs=args.epochs,
        force=args.force,
        device=args.device,
        alpha=args.alpha,
    )
    print(result.message)
    return EXIT_PUBLISHED if result.outcome == "published" else EXIT_KEPT


def cmd_label(args: argparse.Namespace) -> int:
    summary = label_shards(args.shards, Path(args.labels), args.out)
    print(summary.line(args.out))
    return 0


def _add_train_options(parser: argparse.ArgumentParser, epochs: int) -> None:
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-2)
    parser.add_argument("--patience", type=int, default=5, help="early-stopping patience")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda…")


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected integers like 0,1,2") from None
    if len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r}: a seed is repeated")
    return seeds


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train, export, validate and optionally publish a model")
    train.add_argument("--arch", required=True, help="a registered model (cnn, resnet, gru, …)")
    train.add_argument(
        "--dataset", required=True, help=f"{', '.join(DATASETS)} or a path to a .npz file"
    )
    _add_train_options(train, epochs=20)
    train.add_argument(
        "--model-option", dest="model_options", type=_model_option, action="append", default=[],
        metavar="KEY=VALUE", help="model config, e.g. depth=20 or hidden=64 (repeatable)",
    )  # fmt: skip
    train.add_argument("--val-fraction", type=float, default=0.1)
    train.add_argument(
        "--augment", action="store_true", help="random shifts/rotations of training images"
    )
    train.add_argument("--out", help=f"run directory (default {RUNS_DIR}/NAME)")
    train.add_argument("--publish", metavar="STORE", help="store directory or s3://bucket/prefix")
    train.add_argument("--name", help="model name in the store (default ARCH-DATASET)")
    train.add_argument("--max-batch-size", type=int, default=64, help="serving batch limit")
    train.add_argument("--no-variants", action="store_true", help="skip fp16 and int8 variants")
    train.set_defaults(func=cmd_train)

    demo = sub.add_parser("demo", help="publish the demo models cnn, resnet, gru, transformer")
    demo.add_argument("--store", required=True, help="store directory or s3://bucket/prefix")
    demo.add_argument("--force", action="store_true", help="retrain models already present")
    demo.set_defaults(func=cmd_demo)

    cmp = sub.add_parser("compare", help="every architecture on every dataset it fits, over seeds")
    cmp.add_argument(
        "--seeds", type=_seeds, default=(0, 1, 2), help="comma-separated, e.g. 0,1,2 (default)"
    )
    cmp.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    cmp.add_argument(
        "--archs", nargs="+", default=list(default_archs()), choices=default_archs(),
        help="registered models (default all); each runs on the datasets of its input kind",
    )  # fmt: skip
    cmp.add_argument(
        "--epochs", type=int, help=f"at most, every dataset (default per dataset: {DEFAULT_EPOCHS})"
    )
    cmp.add_argument("--batch-size", type=int, help="default 64 (32 on japanese_vowels)")
    cmp.add_argument("--lr", type=float, default=2e-3)
    cmp.add_argument("--patience", type=int, default=5, help="early-stopping patience")
    cmp.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda…")
    cmp.add_argument(
        "--note", default="", help="a line for the report (e.g. how loaded the host was)"
    )
    cmp.add_argument("--out", default=str(RUNS_DIR / "compare"), help="where the report goes")
    cmp.set_defaults(func=cmd_compare)

    again = sub.add_parser(
        "retrain",
        help="train a challenger with the champion's recipe; publish it only if not worse",
        description="Exit status: 0 published, 3 champion kept, 1 error (training/README.md).",
    )
    again.add_argument("--model", required=True, help="the model's name in the store")
    again.add_argument("--store", required=True, help="store directory or s3://bucket/prefix")
    again.add_argument(
        "--data", metavar="DIR|s3://…", help="labelled .npz shards added to the training split"
    )
    again.add_argument("--epochs", type=int, help="override the recipe's epochs")
    again.add_argument(
        "--force", action="store_true", help="publish whatever the gate says (recorded as forced)"
    )
    again.add_argument("--alpha", type=float, default=ALPHA, help="level of the 'worse' test")
    again.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda…")
    again.set_defaults(func=cmd_retrain)

    label = sub.add_parser("label", help="captured shards + labels → labelled shards for --data")
    label.add_argument("--shards", required=True, metavar="DIR|s3://…", help="captured shards")
    label.add_argument(
        "--labels", required=True, help="labels.csv (request_id,label) or labels.npy"
    )
    label.add_argument("--out", required=True, metavar="DIR|s3://…", help="where shards go")
    label.set_defaults(func=cmd_label)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Our progress at INFO; the exporter's libraries stay at WARNING.
    logging.getLogger("training").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        result: int = args.func(args)
    except (StoreError, ValueError, KeyError, OSError, ParityError) as exc:
        if args.command not in ("retrain", "label"):
            raise
        # Bad input (a shard, a recipe, a store) is one line, never a traceback.
        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"error: {text}", file=sys.stderr)
        return EXIT_ERROR
    return result
