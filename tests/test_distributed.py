"""``fit`` under torchrun with two processes (DistributedDataParallel, gloo on CPU)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.conftest import ROOT, run_trainer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fit_two_processes(out, *args: str) -> dict:
    """``torchrun --nproc_per_node=2 -m trainer fit ARGS --out OUT``; the checkpoint it wrote."""
    torchrun = shutil.which("torchrun")
    cmd = [*([torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"])]
    cmd += ["--nproc_per_node=2", f"--master_port={_free_port()}", "-m", "trainer", "fit", *args]
    proc = subprocess.run([*cmd, "--out", str(out), "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return torch.load(out, weights_only=True)


@pytest.mark.slow  # two training processes: run alone (CI's slow group runs without pytest workers)
def test_fit_with_two_processes(tmp_path):
    args = "--epochs 1 --limit-train 128 --limit 600 --width 4 --batch-size 16 --method mtt --configs-per-batch 2"
    args += " --norm bn"
    out = tmp_path / "ddp.pt"
    ckpt = _fit_two_processes(out, *args.split())
    metrics = ckpt["metrics"]
    assert metrics["world_size"] == 2
    # each rank trained on its own half of the 128 samples
    assert metrics["history"][0]["samples_this_rank"] == 64
    # the ranks evaluated together (3 batches of 256 between them), of rank 0's model, with
    # its BatchNorm statistics (calibrated): the checkpoint's accuracy is one process's
    from runtime.data import load_dataset
    from trainer.checkpoint import load_checkpoint
    from trainer.train import evaluate

    cfg, model, _ = load_checkpoint(out)
    test = load_dataset("digits", "test", limit=600)
    assert metrics["bn_calibrated_layers"] > 0
    assert metrics["test_accuracy"] == evaluate(model, test, [cfg.train_T])[0]


def _eval_case():
    """A BatchNorm model (rank 0's weights) and 70 test samples: 5 batches of 16."""
    from runtime.data import load_dataset
    from tests.test_train import small_config
    from trainer.models import build_model

    cfg = small_config("sdt")
    cfg.model.width = 4
    torch.manual_seed(0)
    return cfg, build_model(cfg).eval(), load_dataset("digits", "test", limit=70)


def _eval_rank(rank: int, store: str, out: str) -> None:
    import torch.distributed as dist

    from trainer.distributed import teardown
    from trainer.train import count_correct, eval_mode, evaluate_on_ranks

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    cfg, model, test = _eval_case()
    if rank == 1:  # statistics of its own last batch share: not the checkpoint's
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.add_(3.0)
    with torch.no_grad(), eval_mode(model):  # this rank's batches: 0, 2, 4 of 16 (rank 0)
        mine = count_correct(model, test, [6, 6], range(16 * rank, 70, 32), 16, None, None)
    acc = evaluate_on_ranks(model, test, 6, batch_size=16)
    torch.save({"acc": acc, "mine": mine, "buffers": dict(model.named_buffers())}, f"{out}.{rank}")
    teardown()


@pytest.mark.slow  # two processes
def test_ranks_evaluate_rank_zeros_model_together(tmp_path):
    """Each rank evaluates its share of the batches, with rank 0's BatchNorm statistics
    (broadcast first), and the counts are summed: one process's accuracy, to the sample."""
    import torch.multiprocessing as mp

    from trainer.train import evaluate

    out = str(tmp_path / "acc")
    mp.spawn(_eval_rank, args=(str(tmp_path / "store"), out), nprocs=2, join=True)
    got = [torch.load(f"{out}.{r}", weights_only=True) for r in (0, 1)]
    cfg, model, test = _eval_case()
    want = evaluate(model, test, [6], batch_size=16)[0]
    assert got[0]["acc"] == got[1]["acc"] == want
    assert 0 < got[0]["mine"] < round(want * 70)  # each rank counted a real share of the batches
    for name, b in model.named_buffers():  # rank 1 evaluated with rank 0's statistics
        torch.testing.assert_close(got[1]["buffers"][name], b, rtol=0, atol=0)


# ---------------------------------------------------------------- online methods (issue 18)

ONLINE_DDP = ["sltt", "sltt-k", "ndot-a", "ndot-o"]


def _online_case(method: str):
    """A float64 model without BatchNorm (per-rank statistics would differ), a batch of 8."""
    from tests.test_online import spikes, tiny_cfg
    from trainer.models import build_model

    cfg = tiny_cfg(method, T=4, norm="none", K=2 if method == "sltt-k" else 0)
    torch.manual_seed(0)
    model = build_model(cfg).double().train()
    x = spikes(4, 8, (2, 8, 8), seed=5).double()
    y = torch.arange(8) % 10
    return cfg, model, x, y


def _online_rank(rank: int, method: str, store: str, out: str) -> None:
    import numpy as np
    import torch.distributed as dist

    from trainer.distributed import teardown
    from trainer.online import online_iteration

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    cfg, model, x, y = _online_case(method)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    for _ in range(2):  # two batches: the momentum carries rank-averaged gradients
        online_iteration(model, opt, x[:, rank::2], y[rank::2], cfg.method, np.random.default_rng(3))
    if rank == 0:
        torch.save(model.state_dict(), out)
    teardown()  # the product's teardown: a bare destroy_process_group aborted 1 run in CI


@pytest.mark.slow  # two processes: run alone like the DDP test above
@pytest.mark.parametrize("method", ONLINE_DDP)
def test_online_methods_in_two_processes_equal_one_process(method, tmp_path):
    """Each rank trains on half of every batch; the gradients averaged before every
    optimizer step (per batch for sltt/-a, per time step for -o) give the weights of one
    process on the whole batch (float64, no BatchNorm, SLTT-K's steps drawn alike)."""
    import numpy as np
    import torch.multiprocessing as mp

    from trainer.online import online_iteration

    out = tmp_path / "rank0.pt"
    mp.spawn(_online_rank, args=(method, str(tmp_path / "store"), str(out)), nprocs=2, join=True)
    cfg, model, x, y = _online_case(method)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    for _ in range(2):
        online_iteration(model, opt, x, y, cfg.method, np.random.default_rng(3))
    ddp = torch.load(out, weights_only=True)
    assert any(not torch.equal(start[k], v) for k, v in model.state_dict().items())  # it trained
    for k, v in model.state_dict().items():
        torch.testing.assert_close(ddp[k], v, rtol=1e-10, atol=1e-12, msg=k)


def test_ranks_split_each_batch_of_one_process():
    """--batch-size is the whole batch under torchrun too: each rank its share of every
    batch one process would run (it was per process: two processes trained on batches
    twice as large, and up to a batch per rank of samples went unused, unsaid)."""
    from trainer.distributed import rank_batches

    order = list(np.random.default_rng(0).permutation(29))
    one = rank_batches(order, 0, 1, 8)
    assert one == [order[i : i + 8] for i in range(0, 29, 8)]
    for world in (2, 4):
        shares = [rank_batches(order, r, world, 8) for r in range(world)]
        kept = 29 - 29 % world  # at most world - 1 samples left out
        assert all(len(s) == len(shares[0]) for s in shares)  # the same number of backward passes
        for k, batch in enumerate(rank_batches(order[:kept], 0, 1, 8)):
            got = [s[k] for s in shares]
            assert {len(g) for g in got} == {len(batch) // world}  # equal shares: equal weights
            assert sorted(sum(got, [])) == sorted(batch)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["sltt", "ndot-a"])
def test_fit_online_with_two_processes(method, tmp_path, capsys):
    """``torchrun`` fit with an online method: no refusal any more, each rank half of every
    batch; the weights are one process's on the same command (no BatchNorm, float32)."""
    args = "--T 3 --epochs 1 --limit-train 64 --limit 20 --width 4 --batch-size 16 --threads 1".split()
    ckpt = _fit_two_processes(tmp_path / "ddp.pt", "--method", method, *args)
    assert ckpt["metrics"]["world_size"] == 2 and ckpt["config"]["method"]["name"] == method
    assert ckpt["metrics"]["history"][0]["samples_this_rank"] == 32
    code, _, err = run_trainer(capsys, "fit", "--method", method, *args, "--out", str(tmp_path / "one.pt"), "--quiet")
    assert code == 0, err
    one = torch.load(tmp_path / "one.pt", weights_only=True)
    for k, v in one["state_dict"].items():
        torch.testing.assert_close(ckpt["state_dict"][k], v, rtol=1e-4, atol=1e-5, msg=k)
    # the epoch's loss is every rank's, as one process computes it (it was rank 0's half)
    assert ckpt["metrics"]["history"][0]["loss"] == pytest.approx(one["metrics"]["history"][0]["loss"], rel=1e-4)


# ---------------------------------------------------------------- resume under torchrun


def _resume_rank(rank: int, store: str, folder: str, resume: bool) -> None:
    """One rank of a 2-process mtt run of 2 epochs: from scratch (writing the epoch-1
    checkpoint, what a run stopped then leaves), or resumed from that checkpoint."""
    import os

    import torch.distributed as dist

    from runtime.data import load_dataset
    from tests.test_resume import config
    from trainer.checkpoint import TRAIN_STATE_KEY, save_checkpoint
    from trainer.distributed import teardown
    from trainer.train import Start, fit

    torch.set_num_threads(1)
    os.environ["WORLD_SIZE"] = "2"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    cfg = config("mtt")
    train, test = load_dataset("digits", "train", limit=48), load_dataset("digits", "test", limit=10)
    epoch1 = f"{folder}/epoch1.pt"

    def keep_epoch_1(model, history, state):
        if len(history) == 1:
            save_checkpoint(epoch1, cfg, model, {"history": history}, state)

    start = None
    if resume:
        ckpt = torch.load(epoch1, weights_only=True)
        start = Start(ckpt["state_dict"], ckpt[TRAIN_STATE_KEY], ckpt["metrics"]["history"])
    model, _ = fit(cfg, train, test, progress=False, start=start, on_epoch=None if resume else keep_epoch_1)
    if rank == 0:
        torch.save(model.state_dict(), f"{folder}/{'resumed' if resume else 'whole'}.pt")
    teardown()


@pytest.mark.slow  # two processes, twice: run alone like the DDP tests above
def test_a_resumed_two_process_mtt_run_is_bit_identical(tmp_path):
    """Only rank 0's generator was saved once, and ranks drew apart: rank 1 restarted its
    stream on resume and the weights differed from the uninterrupted run's. Every rank's
    state is saved, and every rank draws the one stream (so any process count resumes it)."""
    import torch.multiprocessing as mp

    for resume, store in ((False, "store1"), (True, "store2")):
        mp.spawn(_resume_rank, args=(str(tmp_path / store), str(tmp_path), resume), nprocs=2, join=True)
    state = torch.load(tmp_path / "epoch1.pt", weights_only=True)["train_state"]
    assert len(state["rng_ranks"]) == 2 and state["rng_ranks"][0] == state["rng_ranks"][1] == state["rng"]
    whole, resumed = (torch.load(tmp_path / f"{n}.pt", weights_only=True) for n in ("whole", "resumed"))
    for k, v in whole.items():
        assert torch.equal(resumed[k], v), k


def _mtt_rank(rank: int, world: int, store: str, out: str) -> None:
    """One rank of an mtt run without BatchNorm (its per-rank statistics would differ)."""
    import os

    import torch.distributed as dist

    from runtime.data import load_dataset
    from tests.test_resume import config
    from trainer.distributed import teardown
    from trainer.train import fit

    torch.set_num_threads(1)
    os.environ["WORLD_SIZE"] = str(world)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    cfg = config("mtt")
    cfg.model.bn, cfg.method.epochs = False, 1
    train, test = load_dataset("digits", "train", limit=64), load_dataset("digits", "test", limit=10)
    model, _ = fit(cfg, train, test, progress=False)
    if rank == 0:
        torch.save(model.state_dict(), out)
    teardown()


@pytest.mark.slow  # two processes: run alone like the DDP tests above
def test_two_processes_train_the_one_process_mtt_model(tmp_path, monkeypatch):
    """Each rank drew its own stage-T configurations: every step averaged gradients of
    different T settings, each on half the batch (weights 1.2e-2 apart after 2 iterations,
    largest weight 6.5e-2), another training rule than one process's, unsaid. Every rank
    draws the same now: the model is one process's up to float summation order."""
    import torch.multiprocessing as mp

    mp.spawn(_mtt_rank, args=(2, str(tmp_path / "store"), str(tmp_path / "two.pt")), nprocs=2, join=True)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    _mtt_rank(0, 1, "", str(tmp_path / "one.pt"))
    one, two = (torch.load(tmp_path / f"{n}.pt", weights_only=True) for n in ("one", "two"))
    worst = max(float((one[k] - two[k]).abs().max()) for k in one)
    assert worst < 1e-4, worst


@pytest.mark.slow  # two processes
def test_more_processes_than_training_samples_is_refused(tmp_path):
    """Each rank's epoch was cut to 0 samples: nothing trained, exit 0, a finished-looking file."""
    torchrun = shutil.which("torchrun")
    cmd = [*([torchrun] if torchrun else [sys.executable, "-m", "torch.distributed.run"])]
    cmd += ["--nproc_per_node=2", f"--master_port={_free_port()}", "-m", "trainer", "fit", "--limit-train", "1"]
    cmd += ["--limit", "10", "--epochs", "1", "--quiet", "--out", str(tmp_path / "m.pt")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "2 processes need at least 2 training samples" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "m.pt").exists()


def test_world_size_without_torchrun_is_one_error(tmp_path, capsys, monkeypatch):
    """WORLD_SIZE=2 left in the environment, no torchrun: torch's ValueError traceback."""
    for k in ("RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    code, _, err = run_trainer(capsys, "fit", "--epochs", "1", "--limit-train", "20", "--limit", "10", "--quiet",
                               "--out", str(tmp_path / "m.pt"))  # fmt: skip
    assert code == 2 and err.startswith("error: WORLD_SIZE=2 is set but RANK") and err.count("\n") == 1, err
    assert not (tmp_path / "m.pt").exists()
