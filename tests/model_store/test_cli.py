"""The `python -m model_store` command line: tables on success, one-line errors otherwise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from model_store import open_store
from model_store.cli import main

REPO = Path(__file__).resolve().parents[2]


def run(capsys: pytest.CaptureFixture[str], store: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--store", str(store), *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


def test_add_list_show_promote_rollback_verify_gc(
    capsys: pytest.CaptureFixture[str], store_dir: Path, external_model: Path, tmp_path: Path
) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\nbird\n")
    code, out, _ = run(
        capsys, store_dir, "add", "demo", str(external_model), "--labels", str(labels),
        "--metric", "accuracy=0.97", "--promote", "stable",
    )  # fmt: skip
    assert (code, out) == (0, "added demo version 1\n")
    assert run(capsys, store_dir, "add", "demo", str(external_model))[0] == 0

    code, out, _ = run(capsys, store_dir, "list")
    assert out.splitlines() == [
        "MODEL  VERSIONS  LATEST  ALIASES   POLICY",
        "demo   2         2       stable→1  latest 1",
    ]
    code, out, _ = run(capsys, store_dir, "list", "demo")
    header, first, second, policy = out.splitlines()
    assert policy == "policy: latest 1"
    assert header.split() == ["VERSION", "CREATED", "SIZE", "PRODUCER", "ALIASES", "METRICS"]
    assert first.split()[0] == "1"
    assert first.split()[-2:] == ["stable", "accuracy=0.97"]
    assert second.split()[-2:] == ["-", "-"]

    code, out, _ = run(capsys, store_dir, "show", "demo", "stable")
    assert "demo version 1" in out
    assert "x       input   FP32      [-1, 4]" in out
    assert "model.onnx.data" in out
    code, out, _ = run(capsys, store_dir, "show", "demo", "--json")
    assert '"version": 2' in out

    assert run(capsys, store_dir, "promote", "demo", "2")[1] == "demo: stable → version 2\n"
    assert run(capsys, store_dir, "rollback", "demo")[1] == "demo: stable → version 1\n"
    code, out, _ = run(capsys, store_dir, "verify", "demo", "--all")
    assert (code, out) == (0, "demo version 1: ok\ndemo version 2: ok\n")
    assert open_store(store_dir).config("demo").labels == {"logits": ("cat", "dog", "bird")}

    assert run(capsys, store_dir, "add", "demo", str(external_model))[0] == 0
    code, out, _ = run(capsys, store_dir, "gc", "demo", "--keep", "1")
    assert (code, out) == (0, "demo: deleted 2; kept [1, 3]\n")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "nope"], "error: model 'nope' has no version"),
        (["add", "Bad-Name", "x.onnx"], "error: invalid model name 'Bad-Name'"),
        (["add", "demo", "/nonexistent/m.onnx"], "error: /nonexistent/m.onnx: no such file"),
        (["promote", "demo", "1", "--alias", "../up"], "error: invalid alias '../up'"),
        (["show", "demo", "7"], "error: model 'demo' has no version 7"),
        (["rollback", "demo"], "error: model 'demo' has no alias 'stable'"),
        (["gc", "demo", "--keep", "0"], "error: gc keep=0"),
    ],
)
def test_bad_input_exits_1_with_one_line(
    capsys: pytest.CaptureFixture[str],
    store_dir: Path,
    model_file: Path,
    args: list[str],
    message: str,
) -> None:
    assert run(capsys, store_dir, "add", "demo", str(model_file))[0] == 0
    code, out, err = run(capsys, store_dir, *args)
    assert code == 1
    assert out == ""
    assert err.startswith(message)
    assert err.count("\n") == 1


def test_a_corrupted_version_fails_verify(
    capsys: pytest.CaptureFixture[str], store_dir: Path, model_file: Path
) -> None:
    run(capsys, store_dir, "add", "demo", str(model_file))
    (store_dir / "demo" / "1" / "model.onnx").write_bytes(b"tampered")
    code, _, err = run(capsys, store_dir, "verify", "demo")
    assert code == 1
    assert "'model.onnx' has 8 bytes" in err


def test_module_entry_point_reads_the_store_from_the_environment(
    store_dir: Path, model_file: Path
) -> None:
    env = {"INDUCTIVE_STORE": str(store_dir), "PATH": "/usr/bin:/bin"}
    ok = subprocess.run(
        [sys.executable, "-m", "model_store", "add", "demo", str(model_file)],
        cwd=REPO, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert (ok.returncode, ok.stdout) == (0, "added demo version 1\n")
    bad = subprocess.run(
        [sys.executable, "-m", "model_store", "verify", "demo", "../../etc"],
        cwd=REPO, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: invalid alias '../../etc'")
    assert "Traceback" not in bad.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "model_store", "list"],
        cwd=REPO, env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert missing.returncode == 2
    assert "set INDUCTIVE_STORE" in missing.stderr


def test_canary_shadow_promote_rollback_and_what_list_and_show_say(
    capsys: pytest.CaptureFixture[str], store_dir: Path, model_file: Path
) -> None:
    for _ in range(3):
        assert run(capsys, store_dir, "add", "demo", str(model_file))[0] == 0
    assert run(capsys, store_dir, "promote", "demo", "1")[0] == 0

    code, out, _ = run(capsys, store_dir, "canary", "demo", "2", "--weight", "0.2")
    assert (code, out) == (0, "demo: canary version 2 answers 20% of the requests that name no "
                              "version, version 1 (stable) the rest\n")  # fmt: skip
    code, out, _ = run(capsys, store_dir, "list")
    assert out.splitlines()[1].split("  ")[-1] == (
        "canary v2 answers 20% (champion: stable), mirrors 0%"
    )
    code, out, _ = run(capsys, store_dir, "list", "demo")
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:4]}
    assert "stable" in rows["1"]
    assert "canary" in rows["2"]
    assert out.splitlines()[-1].startswith("policy: canary v2")
    assert "aliases:  canary\n" in run(capsys, store_dir, "show", "demo", "2")[1]

    code, out, err = run(capsys, store_dir, "promote", "demo", "3")
    assert (code, err) == (1, "error: model 'demo' has a canary of version 2 in progress: "
                              "promote it (promote demo) or roll it back first\n")  # fmt: skip
    assert run(capsys, store_dir, "promote", "demo")[1] == (
        "demo: stable → version 2; the canary is over\n"
    )
    assert "policy: alias stable" in run(capsys, store_dir, "list", "demo")[1]

    code, out, _ = run(capsys, store_dir, "shadow", "demo", "3", "--mirror", "0.5")
    assert out == (
        "demo: shadow of version 3: 50% of the requests version 2 (stable) answers also run "
        "on it, compared and never sent\n"
    )
    assert run(capsys, store_dir, "rollback", "demo")[1] == (
        "demo: canary of version 3 ended; stable stays version 2\n"
    )
    # Outside a canary, rollback moves the alias back as before.
    assert run(capsys, store_dir, "rollback", "demo")[1] == "demo: stable → version 1\n"
    code, _, err = run(capsys, store_dir, "promote", "demo")
    assert (code, err) == (1, "error: model 'demo' has no canary in progress: name the "
                              "version to promote\n")  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["canary", "demo", "2", "--weight", "0.2"], "error: model 'demo' has no 'stable' version"),
        (["canary", "demo", "1", "--weight", "x"], "usage:"),
        (["shadow", "demo", "5"], "error: model 'demo' has no version 5"),
        (["rollback", "demo", "--alias", "prod"], "error: model 'demo' has no alias 'prod'"),
    ],
)
def test_a_canary_that_cannot_start_exits_with_one_line(
    capsys: pytest.CaptureFixture[str],
    store_dir: Path,
    model_file: Path,
    args: list[str],
    message: str,
) -> None:
    for _ in range(2):
        assert run(capsys, store_dir, "add", "demo", str(model_file))[0] == 0
    if message == "usage:":
        with pytest.raises(SystemExit) as exit_info:
            run(capsys, store_dir, *args)
        assert exit_info.value.code == 2
        assert "is not a share between 0 and 1" in capsys.readouterr().err
        return
    code, out, err = run(capsys, store_dir, *args)
    assert (code, out) == (1, "")
    assert err.startswith(message)
    assert err.count("\n") == 1


def test_verify_without_a_name_checks_the_whole_store(
    capsys: pytest.CaptureFixture[str], store_dir: Path, model_file: Path
) -> None:
    for name in ("a", "b", "b"):
        run(capsys, store_dir, "add", name, str(model_file))
    code, out, _ = run(capsys, store_dir, "verify")
    assert (code, out) == (0, "a version 1: ok\nb version 1: ok\nb version 2: ok\n"
                              "all 3 versions ok\n")  # fmt: skip
    (store_dir / "b" / "1" / "model.onnx").write_bytes(b"tampered")
    code, out, err = run(capsys, store_dir, "verify")
    lines = out.splitlines()
    assert code == 1
    assert lines[0] == "a version 1: ok"
    assert lines[1].startswith("b version 1: FAILED: ")
    assert "'model.onnx' has 8 bytes" in lines[1]
    assert lines[2] == "b version 2: ok"
    assert err == "error: 1 of 3 versions failed verification: b v1\n"
