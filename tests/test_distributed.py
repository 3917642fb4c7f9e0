"""The proof of the distributed lesson: a real 3-process gloo world (ring vs all_reduce, DDP vs one process,
no_sync, rank-0 checkpoints, a skipped collective), one torchrun launch, and the single-process pieces."""

from __future__ import annotations

import math
import multiprocessing
import os
import pickle
import re
import subprocess
import sys
import time

import pytest
import torch
import torch.distributed as dist
from matplotlib.figure import Figure

from torchenstein.advanced.distributed import (
    STRATEGIES,
    _spawned_rank,
    check_recursive_doubling_partners,
    check_shard_indices,
    find_free_port,
    launch,
    memory_per_rank,
    plot_memory_per_rank,
    process_group,
    recursive_doubling_partners,
    ring_all_reduce,
    ring_bytes_per_rank,
    ring_schedule,
    run_experiments,
    shard_indices,
    simulate_ring_all_reduce,
)

WORLD = 3
# A copy of this process starts in milliseconds; a fresh interpreter (spawn) imports PyTorch again, and
# each DDP imports torch._dynamo on top: seconds per rank on a 2-core machine. The spawn path is the same
# code with pickled arguments, which test_launch_arguments_pickle checks.
START = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """One launch of three ranks that runs every experiment of the lesson; each rank's report."""
    if START == "fork":
        import torch._dynamo  # noqa: F401  (DDP imports it; once here rather than once per child)
    directory = tmp_path_factory.mktemp("ranks")
    return launch(run_experiments, WORLD, str(directory), timeout=120, start_method=START)


# ---------------------------------------------------------------------------------------------------
# The ring, between real processes


def test_ring_all_reduce_equals_dist_all_reduce(reports):
    cases = [case for report in reports for case in report["ring"]]
    # Ranks 0 and 1 took part in the 2-rank group and the world, rank 2 only in the world.
    assert {case["world"] for case in cases} == {2, 3}
    assert {case["numel"] for case in cases} >= {0, 1, 2, 5, 7, 10, 33}  # below, at and off the world size
    for case in cases:
        exactly = case["dtype"] == "torch.int64" or case["op"] in ("MIN", "MAX")
        assert case["exact"] if exactly else case["max diff"] < 1e-5, case


def test_ring_bytes_sent_match_the_count(reports):
    for rank, report in enumerate(reports):
        for case in report["ring"]:
            assert case["bytes sent"] == case["bytes expected"], (rank, case)


# ---------------------------------------------------------------------------------------------------
# DDP and our data parallelism, against one process on the concatenated batch


def test_ddp_gradients_and_parameters_equal_one_process(reports):
    for rank, report in enumerate(reports):
        ddp = report["ddp"]
        assert ddp["replicas start equal"], rank
        for key in ("gradient vs whole batch", "ours vs DDP gradient", "DDP vs twin after steps",
                    "ours vs twin after steps", "no_sync vs big batch"):  # fmt: skip
            assert ddp[key] < 1e-6, (rank, key, ddp[key])
        assert ddp["ranks identical"], rank
        assert ddp["no_sync grads differ across ranks"], rank


def test_hammer_divides_by_the_world_size_twice(reports):
    for report in reports:
        assert math.isclose(report["ddp"]["hammer ratio"], WORLD, rel_tol=1e-5)


def test_training_with_ddp_equals_training_with_ours(reports):
    ddp = [report["train with ddp"] for report in reports]
    ours = [report["train with ours"] for report in reports]
    # The same parameters on every rank; 300 samples over 3 ranks, 2 epochs.
    assert len({r["checksum"] for r in ddp}) == 1 and len({r["checksum"] for r in ours}) == 1
    assert all(r["samples"] == 200 for r in ddp + ours)
    assert math.isclose(ddp[0]["checksum"], ours[0]["checksum"], rel_tol=1e-5, abs_tol=1e-4)
    for a, b in zip(ddp, ours, strict=True):
        assert math.isclose(a["loss"], b["loss"], rel_tol=1e-4)


def test_checkpoint_from_rank_zero_loads_everywhere(reports):
    for report in reports:
        assert report["checkpoint loads on every rank"]
        assert report["ddp first key"] == "module.0.weight"  # why the lesson saves ddp.module.state_dict()


def test_skipped_collective_times_out_instead_of_hanging(reports):
    assert "Timed out" in reports[0]["skipped collective"]
    assert all(report["skipped collective"] is None for report in reports[1:])


# ---------------------------------------------------------------------------------------------------
# Launching: torchrun once, launch's failure paths


def test_torchrun_runs_the_module(tmp_path):
    checkpoint = tmp_path / "spiral.pt"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "torchenstein.advanced.distributed", "--epochs", "1", "--data-parallel", "ours",
               "--checkpoint", str(checkpoint), "--timeout", "60"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = sorted(re.findall(r"rank (\d)/(\d): samples=(\d+) loss=\S+ checksum=(\S+)", done.stdout))
    assert [(rank, world) for rank, world, _, _ in lines] == [("0", "2"), ("1", "2")], done.stdout
    assert all(samples == "150" for _, _, samples, _ in lines)  # 300 samples, half each
    checksums = {checksum for _, _, _, checksum in lines}
    assert len(checksums) == 1  # both ranks hold the same parameters
    from torchenstein.training.loop import spiral_classifier

    model = spiral_classifier(32)
    model.load_state_dict(torch.load(checkpoint, weights_only=True))
    assert f"{sum(p.sum() for p in model.parameters()).item():.6f}" == checksums.pop()


def _sleep(rank, world_size, seconds):
    time.sleep(seconds)


def _fail_on_rank_one(rank, world_size):
    if rank == 1:
        raise ValueError("rank 1 gives up")
    return rank


needs_fork = pytest.mark.skipif(START != "fork", reason="functions of a test module cannot be spawned")


@needs_fork
def test_launch_kills_a_run_past_its_timeout():
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="did not finish within timeout=0.5"):
        launch(_sleep, 2, 30.0, timeout=0.5, start_method="fork")
    assert time.monotonic() - start < 10


@needs_fork
def test_launch_reports_a_failing_rank():
    from torch.multiprocessing import ProcessRaisedException

    with pytest.raises(ProcessRaisedException, match="rank 1 gives up"):
        launch(_fail_on_rank_one, 2, timeout=30.0, start_method="fork")


def test_launch_arguments_pickle(tmp_path):
    # spawn sends the function and its arguments to fresh interpreters by pickling them.
    payload = (_spawned_rank, run_experiments, 3, find_free_port(), 60.0, str(tmp_path), (str(tmp_path),))
    assert pickle.loads(pickle.dumps(payload))[1] is run_experiments


def test_launch_rejects_bad_arguments():
    with pytest.raises(ValueError, match="world_size must be an int of at least 1, got 0"):
        launch(_sleep, 0)
    with pytest.raises(ValueError, match="start_method must be"):
        launch(_sleep, 1, start_method="teleport")
    with pytest.raises(ValueError, match="timeout must be a positive"):
        launch(_sleep, 1, timeout=0)


def test_process_group_is_destroyed_even_on_failure():
    with pytest.raises(KeyError), process_group(master_port=find_free_port()):
        assert dist.get_world_size() == 1
        raise KeyError("boom")
    assert not dist.is_initialized()
    with process_group(master_port=find_free_port()), pytest.raises(RuntimeError, match="already exists"):
        with process_group(master_port=find_free_port()):
            pass
    assert not dist.is_initialized()


def test_ring_all_reduce_on_one_rank_and_bad_arguments():
    with process_group(master_port=find_free_port()):
        x = torch.arange(5.0)
        assert ring_all_reduce(x) == 0 and x.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    with pytest.raises(TypeError, match="tensor must be contiguous"):
        ring_all_reduce(torch.ones(3, 4).t())
    with pytest.raises(TypeError, match="tensor must be a torch.Tensor"):
        ring_all_reduce([1.0, 2.0])
    with pytest.raises(ValueError, match="op must be"):
        ring_all_reduce(torch.ones(3), op="sum")


# ---------------------------------------------------------------------------------------------------
# The ring on paper


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8])
def test_ring_schedule_is_consistent(n):
    steps = ring_schedule(n)
    assert len(steps) == 2 * (n - 1)
    for pairs in steps:
        assert len(pairs) == n
        for r in range(n):
            assert pairs[r][1] == pairs[(r - 1) % n][0]  # I receive what my left neighbour sends
            assert pairs[r][0] != pairs[r][1]
        assert sorted(send for send, _ in pairs) == list(range(n))  # every chunk moves once per step


@pytest.mark.parametrize("n", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("shape", [(0,), (1,), (5,), (3, 4), (2, 3, 5)])
@pytest.mark.parametrize("dtype", [torch.int64, torch.float64])
def test_simulated_ring_equals_the_sum(n, shape, dtype):
    g = torch.Generator().manual_seed(n * 100 + len(shape))
    tensors = [torch.randint(-9, 10, shape, generator=g).to(dtype) for _ in range(n)]
    expected = torch.stack(tensors).sum(0)
    results = simulate_ring_all_reduce(tensors)
    for result in results:
        assert result.shape == expected.shape and result.dtype == dtype
        torch.testing.assert_close(result, expected, rtol=0, atol=0)
    assert torch.equal(tensors[0], torch.stack(tensors)[0])  # inputs untouched


def test_simulated_ring_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"one shape, got shapes \[\(2,\), \(3,\)\]"):
        simulate_ring_all_reduce([torch.ones(2), torch.ones(3)])
    with pytest.raises(ValueError, match="non-empty"):
        simulate_ring_all_reduce([])


@pytest.mark.parametrize("n", [1, 2, 3, 4, 6, 16])
@pytest.mark.parametrize("numel", [0, 1, 5, 10, 97, 1000])
def test_ring_bytes_total_exactly_two_n_minus_one_tensors(n, numel):
    per_rank = ring_bytes_per_rank(numel, n, element_size=2)
    assert len(per_rank) == n
    assert sum(per_rank) == 2 * (n - 1) * numel * 2
    chunk = math.ceil(numel / n) * 2
    assert max(per_rank) - min(per_rank) <= 2 * chunk  # each rank within a chunk per phase of the mean


# ---------------------------------------------------------------------------------------------------
# Memory by formula, the figure and the challenges


def test_memory_per_rank_formulas():
    p, n = 4547, 4
    shard = math.ceil(p / n)
    assert memory_per_rank(p, n, "no_shard") == 16 * p
    assert memory_per_rank(p, n, "optimizer_state") == 8 * p + 8 * shard
    assert memory_per_rank(p, n, "shard_grad_op") == 4 * p + 12 * shard
    assert memory_per_rank(p, n, "full_shard") == 16 * shard
    assert all(memory_per_rank(p, 1, s) == 16 * p for s in STRATEGIES)  # one rank: nothing to share
    assert memory_per_rank(10, 3, "full_shard", param_bytes=2, grad_bytes=2, optimizer_bytes=12) == 4 * 16
    with pytest.raises(TypeError, match="num_params must be an int"):
        memory_per_rank(1.5, 2)


def test_plot_memory_per_rank():
    fig = plot_memory_per_rank()
    assert isinstance(fig, Figure) and len(fig.axes[0].lines) == len(STRATEGIES)


def test_challenge_solutions_pass_their_checkers():
    assert check_recursive_doubling_partners(recursive_doubling_partners) is None
    assert check_shard_indices(shard_indices) is None


def test_recursive_doubling_checker_rejects_wrong_attempts():
    def ring_partners(n):  # a ring is not a pairing
        if n & (n - 1):
            raise ValueError(n)
        return [[(r + 1) % n for r in range(n)] for _ in range(n.bit_length() - 1)]

    def same_partner_twice(n):  # pairs up, but adds the same half twice
        if n & (n - 1):
            raise ValueError(n)
        return [[r ^ 1 for r in range(n)] for _ in range(n.bit_length() - 1)]

    def accepts_three(n):
        return recursive_doubling_partners(n) if not n & (n - 1) else [[]]

    for wrong, message in ((ring_partners, "partners must pair up"), (same_partner_twice, "not the sum"),
                           (accepts_three, "should raise ValueError")):  # fmt: skip
        with pytest.raises(AssertionError, match=message):
            check_recursive_doubling_partners(wrong)


def test_shard_indices_checker_rejects_wrong_attempts():
    def forgets_the_epoch(n, replicas, rank, *, shuffle=True, seed=0, epoch=0, drop_last=False):
        return shard_indices(n, replicas, rank, shuffle=shuffle, seed=seed, epoch=0, drop_last=drop_last)

    def contiguous_blocks(n, replicas, rank, *, shuffle=True, seed=0, epoch=0, drop_last=False):
        indices = shard_indices(n, 1, 0, shuffle=shuffle, seed=seed, epoch=epoch)
        size = math.ceil(n / replicas)
        return indices[rank * size : (rank + 1) * size]

    for wrong in (forgets_the_epoch, contiguous_blocks):
        with pytest.raises(AssertionError, match="expected"):
            check_shard_indices(wrong)


def test_shard_indices_cover_the_data_set():
    for n, replicas in ((10, 3), (2, 5), (12, 4)):
        shards = [shard_indices(n, replicas, r, epoch=1) for r in range(replicas)]
        assert len({len(s) for s in shards}) == 1
        assert set().union(*shards) == set(range(n))
    with pytest.raises(ValueError, match="rank must be an int with 0 <= rank < world_size=2, got 2"):
        shard_indices(4, 2, 2)
