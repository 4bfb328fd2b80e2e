"""Streamed image folders: decoded per batch by DataLoader workers, the same picks as in memory,
a memory budget that decides the path, undecodable files as one error line (or skipped), resume
after SIGKILL and a 2-rank torchrun run over a streamed folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from runhelpers import Cli, cli_env, client, find_run, kill_after_state, load_array, run_cli, state_rounds
from typer.testing import CliRunner

from svpkit import runtime
from svpkit.cli import app
from svpkit.data import streaming
from svpkit.data.imagefolder import load_imagefolder
from svpkit.data.streaming import StreamedImages

SIZE = 12


def _png_folder(root: Path, n_train: int = 90, n_val: int = 24) -> None:
    """Lossless PNGs of three classes (a class-dependent tint plus noise), 14×16 pixels."""
    from torchvision.io import write_png

    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            label = i % 3
            pixels = rng.integers(0, 120, size=(3, 14, 16)) + 60 * label
            folder = root / split / f"c{label}"
            folder.mkdir(parents=True, exist_ok=True)
            write_png(torch.from_numpy(pixels.astype(np.uint8)), str(folder / f"{i:04d}.png"))


def test_the_streamed_pool_decodes_what_memory_holds(tmp_path: Path) -> None:
    _png_folder(tmp_path, 30, 6)
    memory = load_imagefolder(tmp_path, size=SIZE, stream="off")
    streamed = load_imagefolder(tmp_path, size=SIZE, stream="on", workers=2)
    assert (memory.access, streamed.access) == ("memory", "stream")
    assert isinstance(streamed.train.x, StreamedImages) and streamed.train.x.shape == memory.train.x.shape
    assert (streamed.mean, streamed.std) == (memory.mean, memory.std)
    idx = torch.tensor([7, 0, 29, 7])
    assert torch.equal(streamed.train.x[idx], memory.train.x[idx])  # random access, in the order asked
    assert torch.equal(torch.cat(list(streamed.train.x.batches(None, 8))), memory.train.x)
    assert torch.equal(streamed.limited(train=5).train.x[0:5], memory.train.x[:5])
    # The memory budget decides: a pool over it streams.
    assert load_imagefolder(tmp_path, size=SIZE, memory_budget=0.0).access == "stream"
    assert load_imagefolder(tmp_path, size=SIZE, memory_budget=1.0).access == "memory"


HEAP_HOLES = """
import ctypes
from pathlib import Path
from svpkit import runtime

def anonymous_mib():
    lines = Path("/proc/self/smaps_rollup").read_text().splitlines()
    return next(int(line.split()[1]) // 1024 for line in lines if line.startswith("Anonymous:"))

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
libc.free(libc.malloc(30 << 20))  # freed from mmap: glibc raises its threshold and serves later blocks from its heap
blocks, small = [], []
for _ in range(16):
    blocks.append(libc.malloc(24 << 20))
    ctypes.memset(blocks[-1], 1, 24 << 20)
    small.append(libc.malloc(100_000))  # long-lived, between the blocks
for block in blocks:
    libc.free(block)
held = anonymous_mib()
runtime.release_free_memory()
print(held - anonymous_mib())
"""


@pytest.mark.skipif(runtime._glibc_trim() is None, reason="needs glibc (malloc_trim): Linux")
def test_freed_heap_holes_go_back_to_the_system() -> None:
    """What a streamed pass leaves behind (docs/performance.md): blocks of tens of MiB freed with
    small ones between them stay resident until the heap's free pages are returned (malloc and
    free from C in a fresh process, so that glibc places each block where the test says)."""
    done = subprocess.run([sys.executable, "-c", HEAP_HOLES], capture_output=True, text=True, check=True)
    assert int(done.stdout.split()[-1]) >= 360, "the 384 MiB freed between the small blocks go back"


def test_a_streamed_pass_returns_free_memory_every_few_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _png_folder(tmp_path, 40, 4)
    calls: list[int] = []
    monkeypatch.setattr(streaming, "release_free_memory", lambda: calls.append(1))
    pool = load_imagefolder(tmp_path, size=SIZE, stream="on", workers=1).train.x
    assert isinstance(pool, StreamedImages)
    calls.clear()
    assert sum(len(b) for b in pool.batches(None, 2)) == 40  # 20 batches
    assert len(calls) == 20 // streaming.TRIM_EVERY


def test_a_streamed_run_picks_what_the_in_memory_run_picks(tmp_path: Path, tracking_uri: str) -> None:
    """The default selector ``auto`` on a streamed pool picks on the selector model's features
    (``embedding=auto`` resolves to ``model``, recorded): what the in-memory run picks with
    ``embedding=model`` given, round for round (the pool's softmax and embeddings read batch by batch)."""
    _png_folder(tmp_path / "png", 60, 12)
    base = ["active-learning", "--quiet", "--dataset", "imagefolder", "--data-path", str(tmp_path / "png")]
    base += ["--proxy", "preact_resnet20", "--target", "preact_resnet20", "--initial", "10", "--budgets", "20,30"]
    base += ["--proxy-epochs", "1", "--no-train-target", "--device", "cpu", "--seed", "3"]
    picks = {}
    for access, given in (("off", ["--selector-options", "embedding=model"]), ("on", [])):
        options = f"size={SIZE},stream={access},workers=2"
        result = CliRunner().invoke(app, [*base, *given, "--dataset-options", options, "--run-name", access])
        assert result.exit_code == 0, result.output
        run = find_run(access)
        assert run is not None
        assert run.data.tags["svpkit.data_access"] == {"off": "memory", "on": "stream"}[access]
        assert run.data.tags["svpkit.selector"] == "auto"
        assert "embedding=model" in run.data.tags["svpkit.selector_options"].split(",")
        picks[access] = [load_array(run.info.run_id, f"rounds/{r}/selected.npy", tmp_path / access) for r in (1, 2)]
    for memory, streamed in zip(picks["off"], picks["on"]):
        assert np.array_equal(memory, streamed)


def test_an_undecodable_file_is_one_error_line_or_skipped(tmp_path: Path, tracking_uri: str) -> None:
    _png_folder(tmp_path, 12, 3)
    bad = tmp_path / "train" / "c1" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    args = ["active-learning", "--quiet", "--dataset", "imagefolder", "--data-path", str(tmp_path)]
    args += ["--proxy", "preact_resnet20", "--target", "preact_resnet20"]
    result = CliRunner().invoke(app, [*args, "--dataset-options", "size=8,stream=on,workers=2"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot decode image") and str(bad) in lines[0]
    assert "Traceback" not in result.output
    skipped = load_imagefolder(tmp_path, size=8, stream="on", workers=2, on_corrupt="skip")
    assert len(skipped.train) == 12 and "1 undecodable files skipped" in skipped.source
    with pytest.raises(Exception, match="broken.png"):
        load_imagefolder(tmp_path, size=8, stream="off")


def _streamed_al(root: Path, budgets: str, dataset: str = "imagefolder") -> list[str]:
    options = f"size={SIZE},workers=2" + (",stream=on" if dataset == "imagefolder" else "")
    args = ["active-learning", "--quiet", "--dataset", dataset, "--data-path", str(root)]
    args += ["--dataset-options", options, "--proxy", "preact_resnet20"]
    args += ["--target", "preact_resnet20", "--initial", "10", "--budgets", budgets, "--proxy-epochs", "1"]
    return [*args, "--no-train-target", "--device", "cpu", "--seed", "5"]


@pytest.mark.slow
def test_a_streamed_run_killed_mid_way_resumes_to_the_same_picks(tracking_uri: str, tmp_path: Path) -> None:
    _png_folder(tmp_path / "png", 60, 6)
    # The target trained each round (1 epoch) keeps the rounds long enough to be killed mid-run.
    args = [a for a in _streamed_al(tmp_path / "png", "14,18,22,26,30,34") if a != "--no-train-target"]
    args, env = [*args, "--target-epochs", "1"], cli_env(tracking_uri)
    reference = Cli(*args, "--run-name", "uninterrupted", env=env, cwd=tmp_path)
    run_id, _ = kill_after_state(args, env, tmp_path, round_no=1)
    done = state_rounds(run_id)[-1]
    assert 1 <= done < 6, f"killed after round {done}: too late to test resume"
    resumed = run_cli("active-learning", "--resume", run_id, "--quiet", env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert reference.wait() == 0, reference.stderr
    ref_id = find_run("uninterrupted").info.run_id
    run = client().get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["svpkit.data_access"] == "stream"
    assert run.data.tags["svpkit.resumed_from_round"] == str(done)
    for k in range(7):
        name = "labeled" if k == 0 else "selected"
        got = load_array(run_id, f"rounds/{k}/{name}.npy", tmp_path)
        assert got.tolist() == load_array(ref_id, f"rounds/{k}/{name}.npy", tmp_path).tolist(), f"round {k}"


def two_rank_run(tmp_path: Path, dataset: str, root: Path) -> None:
    """``torchrun --nproc_per_node=2`` active learning over a streamed pool: one FINISHED run."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {
        **cli_env(uri),
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        env.pop(var, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "svpkit"]
    proc = subprocess.run(
        [*cmd, *_streamed_al(root, "16,22", dataset), "--experiment", "ranks"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    c = mlflow.MlflowClient(tracking_uri=uri)
    runs = c.search_runs([e.experiment_id for e in c.search_experiments()])
    assert len(runs) == 1  # rank 1 created nothing
    run = runs[0]
    assert run.info.status == "FINISHED" and run.data.tags["svpkit.data_access"] == "stream"
    assert run.data.params["distributed.world_size"] == "2" and run.data.params["dataset"] == dataset
    picks = [np.load(c.download_artifacts(run.info.run_id, f"rounds/{k}/selected.npy", str(tmp_path))) for k in (1, 2)]
    assert [len(p) for p in picks] == [6, 6] and len(np.unique(np.concatenate(picks))) == 12


@pytest.mark.slow
def test_two_ranks_over_a_streamed_folder_give_one_finished_run(tmp_path: Path) -> None:
    _png_folder(tmp_path / "png", 48, 6)
    two_rank_run(tmp_path, "imagefolder", tmp_path / "png")
