"""`python -m training label`: captured shards (y = -1) plus labels → shards `--data` accepts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_store.prefix import open_prefix
from model_store.shards import read_shard, write_shard
from training.cli import main
from training.label import LabelError, label_shards


def captured(directory: Path) -> None:
    """Two captured shards: requests r0 (2 samples), r1, r2 | r3, r4 (sequences of 2 channels)."""
    prefix = open_prefix(directory)
    rng = np.random.default_rng(0)
    for name, ids in (("a.npz", ["r0", "r0", "r1", "r2"]), ("b.npz", ["r3", "r4"])):
        x = rng.random((len(ids), 5, 2), dtype=np.float32)
        lengths = np.arange(1, len(ids) + 1)
        meta: dict[str, np.ndarray | str] = {
            "request_id": np.array(ids), "version": np.ones(len(ids), np.int64),
            "time": np.zeros(len(ids)), "model": "m",
        }  # fmt: skip
        outputs = {"logits": rng.random((len(ids), 3), dtype=np.float32)}
        prefix.write(name, write_shard(x, lengths=lengths, outputs=outputs, meta=meta))


def test_csv_labels_by_request_keep_inputs_and_provenance(tmp_path: Path) -> None:
    captured(tmp_path / "cap")
    (tmp_path / "labels.csv").write_text("request_id,label\nr0,2\nr2,0\n")
    summary = label_shards(str(tmp_path / "cap"), tmp_path / "labels.csv", str(tmp_path / "out"))
    assert (summary.samples, summary.labelled, summary.shards_written) == (6, 3, 1)
    out = open_prefix(tmp_path / "out")
    assert out.names() == ["a.npz"]  # b.npz had no labelled sample
    shard = read_shard(out.read("a.npz"), "a.npz")
    source = read_shard(open_prefix(tmp_path / "cap").read("a.npz"), "a.npz")
    assert shard.y.tolist() == [2, 2, 0]
    assert shard.meta["request_id"].tolist() == ["r0", "r0", "r2"]
    assert np.array_equal(shard.x, source.x[[0, 1, 3]])
    assert shard.lengths is not None
    assert shard.lengths.tolist() == [1, 2, 4]
    shard.check((-1, 2), 3, sequence=True)  # what retrain --data checks


def test_npy_labels_one_per_sample_in_shard_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    captured(tmp_path / "cap")
    np.save(tmp_path / "labels.npy", np.array([0, 1, -1, 2, 1, 1]))
    argv = ["label", "--shards", str(tmp_path / "cap"), "--labels", str(tmp_path / "labels.npy")]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0
    assert "labelled 5 of 6 captured samples into 2 shard(s)" in capsys.readouterr().out
    out = open_prefix(tmp_path / "out")
    assert read_shard(out.read("a.npz"), "a").y.tolist() == [0, 1, 2]
    assert read_shard(out.read("b.npz"), "b").y.tolist() == [1, 1]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("labels.csv", "id,label\nr0,1\n", "expected a header 'request_id,label'"),
        ("labels.csv", "request_id,label\nr0,cat\n", "labels.csv:2: label 'cat' is not an integer"),
        ("labels.csv", "request_id,label\nr0,1\nr0,2\n", "request 'r0' labelled twice"),
        ("labels.npy", [1, 2], "2 labels for 6 captured samples"),
        ("labels.npy", [0.5] * 6, "expected a 1-D integer array"),
        ("labels.txt", "1\n", "must be a .csv or a .npy file"),
    ],
)
def test_bad_labels_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, content: object, message: str
) -> None:
    captured(tmp_path / "cap")
    path = tmp_path / name
    if name.endswith(".npy"):
        np.save(path, np.array(content))
    else:
        path.write_text(str(content))
    with pytest.raises(LabelError, match=message):
        label_shards(str(tmp_path / "cap"), path, str(tmp_path / "out"))
    argv = ["label", "--shards", str(tmp_path / "cap"), "--labels", str(path), "--out", "x"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert message in err
