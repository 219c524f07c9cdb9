"""`python -m model_store`: list, show, add, promote, rollback, canary, shadow, verify and gc from a
shell.

Every failure the user can cause ends with exit status 1 and one line `error: …` on stderr;
argparse's own usage errors exit with 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError

from model_store.errors import StoreError
from model_store.importer import add_onnx
from model_store.policy import (
    Canary,
    CanaryError,
    current_canary,
    describe,
    promote_canary,
    rollback_canary,
    start_canary,
)
from model_store.schema import ModelConfig
from model_store.store import ModelStore
from model_store.uri import open_store

STORE_ENV = "INDUCTIVE_STORE"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns, two spaces apart, with a header row."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines) + "\n"


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


def _aliases_of(store: ModelStore, name: str) -> dict[int, list[str]]:
    """Version → the aliases naming it, a canary's candidate shown as `canary`."""
    by_version: dict[int, list[str]] = {}
    for alias, version in sorted(store.aliases(name).items()):
        by_version.setdefault(version, []).append(alias)
    canary = current_canary(store, name)
    if canary is not None and canary.candidate is not None:
        by_version.setdefault(canary.candidate, []).append("canary")
    return by_version


def cmd_list(store: ModelStore, args: argparse.Namespace) -> str:
    if args.name is None:
        rows = []
        for name in store.list_models():
            versions = store.list_versions(name)
            shown = ", ".join(f"{a}→{v}" for a, v in sorted(store.aliases(name).items()))
            policy = describe(store.config(name).version_policy)
            rows.append((name, len(versions), versions[-1], shown or "-", policy))
        return table(("MODEL", "VERSIONS", "LATEST", "ALIASES", "POLICY"), rows)
    aliases = _aliases_of(store, args.name)
    version_rows = []
    for version in store.list_versions(args.name):
        m = store.manifest(args.name, version)
        metrics = " ".join(f"{k}={v:.4g}" for k, v in sorted(m.metrics.items()))
        version_rows.append(
            (
                version,
                m.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                _size(sum(f.size for f in m.files)),
                m.producer.package,
                ",".join(aliases.get(version, [])) or "-",
                metrics or "-",
            )
        )
    if not version_rows:
        store.resolve(args.name)  # raises ModelNotFoundError with the usual message
    headers = ("VERSION", "CREATED", "SIZE", "PRODUCER", "ALIASES", "METRICS")
    policy = describe(store.config(args.name).version_policy)
    return table(headers, version_rows) + f"policy: {policy}\n"


def cmd_show(store: ModelStore, args: argparse.Namespace) -> str:
    version = store.resolve(args.name, args.ref)
    m = store.manifest(args.name, version)
    if args.json:
        return m.model_dump_json(indent=2) + "\n"
    producer = " ".join(f"{k}={v}" for k, v in m.producer.model_dump().items() if v is not None)
    out = [
        f"{m.name} version {m.version}  (created {m.created_at:%Y-%m-%d %H:%M:%S %Z})",
        f"producer: {producer}",
        f"dataset:  {m.dataset or '-'}",
        f"aliases:  {', '.join(_aliases_of(store, args.name).get(version, [])) or '-'}",
        f"policy:   {describe(store.config(args.name).version_policy)}",
        "",
        table(
            ("TENSOR", "ROLE", "DATATYPE", "SHAPE"),
            [(t.name, "input", t.datatype, list(t.shape)) for t in m.inputs]
            + [(t.name, "output", t.datatype, list(t.shape)) for t in m.outputs],
        ),
        table(
            ("FILE", "SIZE", "SHA256"), [(f.path, _size(f.size), f.sha256[:16]) for f in m.files]
        ),
    ]
    for title, values in (("metrics", m.metrics), ("parity", m.parity)):
        if values:
            out.append(table((title.upper(), "VALUE"), sorted(values.items())))
    if m.variants:
        out.append(
            table(
                ("VARIANT", "FILE", "PRECISION", "ACCURACY DELTA"),
                [(k, v.file, v.precision, v.accuracy_delta) for k, v in m.variants.items()],
            )
        )
    return "\n".join(out)


def _metric(text: str) -> tuple[str, float]:
    key, sep, value = text.partition("=")
    try:
        if not sep or not key:
            raise ValueError
        return key, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"metric {text!r} is not NAME=NUMBER") from None


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share between 0 and 1")
    return value


def cmd_add(store: ModelStore, args: argparse.Namespace) -> str:
    config = None
    if args.config is not None:
        try:
            config = ModelConfig.model_validate_json(Path(args.config).read_bytes())
        except ValidationError as exc:
            raise StoreError(f"{args.config}: invalid config ({exc.errors()[0]['msg']})") from exc
    labels = None
    if args.labels is not None:
        labels = [line.strip() for line in Path(args.labels).read_text().splitlines()]
        labels = [label for label in labels if label]
    version = add_onnx(
        store,
        args.name,
        args.onnx,
        config=config,
        labels=labels,
        dataset=args.dataset,
        metrics=dict(args.metric),
    )
    if args.promote:
        store.promote(args.name, version, alias=args.promote)
    return f"added {args.name} version {version}\n"


def _canary_alias(canary_alias: str, asked: str | None) -> None:
    if asked is not None and asked != canary_alias:
        raise CanaryError(
            f"the canary in progress is judged against alias {canary_alias!r}, not {asked!r}"
        )


def cmd_promote(store: ModelStore, args: argparse.Namespace) -> str:
    """During a canary: ends it in the candidate's favour. Otherwise: moves the alias."""
    canary = current_canary(store, args.name)
    if canary is None:
        if args.ref is None:
            raise CanaryError(
                f"model {args.name!r} has no canary in progress: name the version to promote"
            )
        alias = args.alias or "stable"
        version = store.promote(args.name, args.ref, alias=alias)
        return f"{args.name}: {alias} → version {version}\n"
    _canary_alias(canary.alias, args.alias)
    if args.ref is not None and store.resolve(args.name, args.ref) != canary.candidate:
        raise CanaryError(
            f"model {args.name!r} has a canary of version {canary.candidate} in progress: "
            f"promote it (promote {args.name}) or roll it back first"
        )
    done = promote_canary(store, args.name)
    return f"{args.name}: {done.alias} → version {done.candidate}; the canary is over\n"


def cmd_rollback(store: ModelStore, args: argparse.Namespace) -> str:
    """During a canary: ends it, the candidate leaves. Otherwise: moves the alias back."""
    canary = current_canary(store, args.name)
    if canary is None:
        alias = args.alias or "stable"
        version = store.rollback(args.name, alias=alias)
        return f"{args.name}: {alias} → version {version}\n"
    _canary_alias(canary.alias, args.alias)
    done = rollback_canary(store, args.name)
    return (
        f"{args.name}: canary of version {done.candidate} ended; "
        f"{done.alias} stays version {done.champion}\n"
    )


def _started(name: str, canary: Canary) -> str:
    champion = f"version {canary.champion} ({canary.alias})"
    if canary.weight == 0.0:
        return (
            f"{name}: shadow of version {canary.candidate}: {canary.mirror:.0%} of the requests "
            f"{champion} answers also run on it, compared and never sent\n"
        )
    mirrored = f"; it also mirrors {canary.mirror:.0%} of the rest" if canary.mirror else ""
    return (
        f"{name}: canary version {canary.candidate} answers {canary.weight:.0%} of the requests "
        f"that name no version, {champion} the rest{mirrored}\n"
    )


def cmd_canary(store: ModelStore, args: argparse.Namespace) -> str:
    canary = start_canary(store, args.name, args.ref, weight=args.weight, mirror=args.mirror)
    return _started(args.name, canary)


def cmd_shadow(store: ModelStore, args: argparse.Namespace) -> str:
    canary = start_canary(store, args.name, args.ref, weight=0.0, mirror=args.mirror)
    return _started(args.name, canary)


def cmd_verify(store: ModelStore, args: argparse.Namespace) -> str:
    if args.name is None:
        return _verify_store(store)
    versions = store.list_versions(args.name) if args.all else [store.resolve(args.name, args.ref)]
    for version in versions:
        store.verify(args.name, version)
    return "".join(f"{args.name} version {v}: ok\n" for v in versions)


def _verify_store(store: ModelStore) -> str:
    """Every version of every model, one line each as it is checked (an object store may take
    a while); raises naming the versions that failed."""
    failed = []
    checked = 0
    for name in store.list_models():
        for version in store.list_versions(name):
            checked += 1
            try:
                store.verify(name, version)
                line = f"{name} version {version}: ok"
            except StoreError as exc:
                failed.append(f"{name} v{version}")
                line = f"{name} version {version}: FAILED: {' '.join(str(exc).split())}"
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    if failed:
        raise StoreError(
            f"{len(failed)} of {checked} versions failed verification: {', '.join(failed)}"
        )
    return f"all {checked} versions ok\n"


def cmd_gc(store: ModelStore, args: argparse.Namespace) -> str:
    deleted = store.gc(args.name, keep=args.keep)
    shown = ", ".join(map(str, deleted)) or "nothing"
    return f"{args.name}: deleted {shown}; kept {store.list_versions(args.name)}\n"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m model_store", description=__doc__)
    parser.add_argument(
        "--store",
        default=os.environ.get(STORE_ENV),
        help=f"store directory or s3://bucket/prefix (default: ${STORE_ENV})",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, run: Callable[..., str], help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(run=run)
        return p

    p = command("list", cmd_list, "models, or the versions of one model")
    p.add_argument("name", nargs="?")
    p = command("show", cmd_show, "a version's manifest")
    p.add_argument("name")
    p.add_argument("ref", nargs="?", default="latest", help="version, 'latest' or an alias")
    p.add_argument("--json", action="store_true", help="print manifest.json as stored")
    p = command("add", cmd_add, "import an ONNX file (and its external data) as a new version")
    p.add_argument("name")
    p.add_argument("onnx", type=Path)
    p.add_argument("--config", type=Path, help="config.json to store with it")
    p.add_argument("--labels", type=Path, help="text file, one class label per line")
    p.add_argument("--dataset")
    p.add_argument("--metric", type=_metric, action="append", default=[], help="NAME=NUMBER")
    p.add_argument("--promote", metavar="ALIAS", help="point this alias at the new version")
    p = command(
        "promote", cmd_promote, "point an alias at a version; during a canary, at the candidate"
    )
    p.add_argument("name")
    p.add_argument("ref", nargs="?", help="the version (none during a canary: its candidate)")
    p.add_argument("--alias", help="default: stable, or the canary's alias")
    p = command(
        "rollback",
        cmd_rollback,
        "point an alias back at its previous version; during a canary, end it",
    )
    p.add_argument("name")
    p.add_argument("--alias", help="default: stable, or the canary's alias")
    p = command(
        "canary",
        cmd_canary,
        "let VERSION answer a share of the requests that name no version; the stable "
        "version answers the rest (end it with promote or rollback)",
    )
    p.add_argument("name")
    p.add_argument("ref", metavar="version")
    p.add_argument("--weight", type=_share, required=True, help="share of requests, 0 to 1")
    p.add_argument(
        "--mirror", type=_share, default=0.0, help="share of the stable version's requests "
        "also run on VERSION and only compared (default 0)"
    )  # fmt: skip
    p = command(
        "shadow",
        cmd_shadow,
        "run a share of the stable version's requests on VERSION too, comparing the outputs "
        "and never sending its answers (a canary of weight 0; end it with promote or rollback)",
    )
    p.add_argument("name")
    p.add_argument("ref", metavar="version")
    p.add_argument("--mirror", type=_share, default=0.1, help="share, 0 to 1 (default 0.1)")
    p = command("verify", cmd_verify, "check sizes and sha256 checksums")
    p.add_argument("name", nargs="?", help="default: every version of every model")
    p.add_argument("ref", nargs="?", default="latest")
    p.add_argument("--all", action="store_true", help="every version")
    p = command(
        "gc", cmd_gc, "delete old versions (never one an alias, a canary or the policy names)"
    )
    p.add_argument("name")
    p.add_argument("--keep", type=int, required=True, help="how many of the newest to keep")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.store:
        parser.error(f"no store: pass --store DIR or set {STORE_ENV}")
    try:
        store = open_store(args.store)
        sys.stdout.write(args.run(store, args))
    except (StoreError, OSError) as exc:
        message = " ".join(str(exc).split())  # one line, whatever the exception's text
        sys.stderr.write(f"error: {message}\n")
        return 1
    return 0
