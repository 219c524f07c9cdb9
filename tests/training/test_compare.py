"""`compare` end to end: the grid on tiny data, and the command line on a tiny real run."""

from __future__ import annotations

import json
import re
import shlex
import time
from pathlib import Path

import pytest

from tests.training.helpers import tiny_images, tiny_sequences
from training.cli import build_parser, main
from training.compare import ComparePlan, run_compare
from training.trainer import TrainConfig

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_every_architecture_runs_on_each_dataset_of_its_kind_for_every_seed() -> None:
    datasets = {"img": tiny_images(64, 32), "seq": tiny_sequences(64, 32)}
    plan = ComparePlan(
        ("img", "seq"), ("cnn", "gru"), (0, 1), TrainConfig(progress=False), epochs=3
    )
    outcome = run_compare(plan, datasets)

    assert [(r.dataset, r.arch, r.seed) for r in outcome.runs] == [
        ("img", "cnn", 0),
        ("img", "cnn", 1),
        ("seq", "gru", 0),
        ("seq", "gru", 1),
    ]
    for run in outcome.runs:
        assert 1 <= run.best_epoch <= run.epochs_run <= 3
        assert 0.0 <= run.val_accuracy <= 1.0
        assert 0.0 <= run.test_accuracy <= 1.0
    # Seeds differ in weights, batch order and validation split: not one run repeated.
    assert outcome.runs[0] != outcome.runs[1]
    assert [(s.dataset, s.arch, s.val.n) for s in outcome.summaries] == [
        ("img", "cnn", 2),
        ("seq", "gru", 2),
    ]
    assert all(s.latency_ms is not None and s.latency_ms > 0 for s in outcome.summaries)


def test_cli_writes_the_report_for_a_tiny_real_run(tmp_path: Path) -> None:
    out = tmp_path / "report"
    argv = ["compare", "--datasets", "japanese_vowels", "--archs", "gru", "lstm"]
    argv += ["--seeds", "0,1", "--epochs", "2", "--out", str(out)]
    assert main(argv) == 0

    md = (out / "compare.md").read_text()
    # The command the report records parses back to the same run.
    (recorded,) = re.findall(r"Reproduce: `python -m training (.*)`", md)
    again, first = build_parser().parse_args(shlex.split(recorded)), build_parser().parse_args(argv)
    assert vars(again) == vars(first)
    assert "| japanese_vowels | gru |" in md
    assert "| japanese_vowels | lstm |" in md
    headline = md.split("## Headline")[1].split("## Every")[0]
    assert headline.count("| japanese_vowels |") == 1
    document = json.loads((out / "compare.json").read_text())
    assert [(r["arch"], r["seed"]) for r in document["runs"]] == [
        ("gru", 0),
        ("gru", 1),
        ("lstm", 0),
        ("lstm", 1),
    ]
    chosen = document["selection"]["japanese_vowels"]["arch"]
    by_arch = {s["arch"]: s for s in document["summaries"]}
    assert by_arch[chosen]["val_accuracy"]["mean"] == max(
        s["val_accuracy"]["mean"] for s in by_arch.values()
    )
    assert (out / "compare.png").read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seeds", "0,0"], "a seed is repeated"),
        (["--seeds", "zero"], "expected integers like 0,1,2"),
        (["--archs", "vgg"], "invalid choice: 'vgg'"),
    ],
)
def test_bad_options_are_refused_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_an_architecture_that_fits_no_dataset_is_refused_before_any_loading() -> None:
    start = time.perf_counter()
    with pytest.raises(SystemExit, match="cnn takes image inputs; none of mnist1d is image"):
        main(["compare", "--datasets", "mnist1d", "--archs", "cnn", "gru"])
    assert time.perf_counter() - start < 5  # refused from the plan, no training began
