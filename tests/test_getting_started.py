"""Proofs for Part 0's first lesson: the laboratory report tells the truth about PyTorch and agrees with
`torchenstein doctor`; the FLOP count agrees with PyTorch's own counter; the timers, the figure, the
traps and the challenges do what the page says."""

import dataclasses
import os
import time

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from torchenstein.cli import doctor_report
from torchenstein.lab import DEVICE_PREFERENCE, DEVICE_VARIABLE, device_available, pick_device, time_it
from torchenstein.laboratory.getting_started import (
    LaboratoryReport,
    MatmulTiming,
    best_device,
    check_best_device,
    check_using_threads,
    device_clash,
    laboratory_report,
    plot_matmul_speed,
    time_matmul,
    using_threads,
)

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture
def no_override(monkeypatch):
    monkeypatch.delenv(DEVICE_VARIABLE, raising=False)


# The laboratory report, against PyTorch and against `torchenstein doctor`


def test_report_states_what_torch_says(no_override):
    report = laboratory_report()
    assert report.torch_version == torch.__version__
    assert report.cuda_version == torch.version.cuda
    assert report.threads == torch.get_num_threads() and isinstance(report.threads, int)
    assert report.cpu_cores == os.cpu_count()
    assert list(report.devices) == list(DEVICE_PREFERENCE)
    assert report.devices == {kind: device_available(kind) for kind in DEVICE_PREFERENCE}
    assert report.devices["cpu"] is True
    assert report.devices["cuda"] == torch.cuda.is_available()
    assert report.picked == pick_device() and report.picked.type in DEVICE_PREFERENCE
    assert report.override is None
    if torch.cuda.is_available():
        assert report.gpu_names == tuple(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    else:
        assert report.gpu_names == ()
    if getattr(torch.version, "hip", None):
        assert report.build == f"ROCm {torch.version.hip}"
    elif torch.version.cuda:
        assert report.build == f"CUDA {torch.version.cuda}"
    else:
        assert report.build == "CPU only"


def test_report_agrees_with_torchenstein_doctor(no_override):
    lines = doctor_report()
    report = laboratory_report()
    torch_line, threads_line, devices_line, chosen_line = str(report).splitlines()
    # The doctor knows no ROCm: there its build reads "CPU only" (noted in the lesson's report).
    if not getattr(torch.version, "hip", None):
        assert torch_line in lines
    assert threads_line in lines
    assert chosen_line in lines
    for kind, available in report.devices.items():
        assert any(line.startswith(f"device {kind}: {'yes' if available else 'no'}") for line in lines)
        assert f"{kind} {'yes' if available else 'no'}" in devices_line


def test_report_honours_the_override(monkeypatch):
    monkeypatch.setenv(DEVICE_VARIABLE, "cpu")
    report = laboratory_report()
    assert report.override == "cpu" and report.picked == torch.device("cpu")
    assert str(report).splitlines()[-1] == f"the course will use: cpu ({DEVICE_VARIABLE}=cpu)"
    assert str(report).splitlines()[-1] in doctor_report()
    monkeypatch.setenv(DEVICE_VARIABLE, "")
    assert laboratory_report().override is None


def test_report_refuses_a_bad_override(monkeypatch):
    monkeypatch.setenv(DEVICE_VARIABLE, "tpu")
    with pytest.raises(ValueError, match="got 'tpu'"):
        laboratory_report()
    if not torch.cuda.is_available():
        monkeypatch.setenv(DEVICE_VARIABLE, "cuda")
        with pytest.raises(RuntimeError, match="asks for a cuda device, but this machine has none"):
            laboratory_report()


@pytest.mark.parametrize(
    ("cuda", "hip", "build"),
    [(None, None, "CPU only"), ("12.4", None, "CUDA 12.4"), (None, "6.2.41133", "ROCm 6.2.41133")],
)
def test_build_names_every_kind_of_wheel(monkeypatch, no_override, cuda, hip, build):
    monkeypatch.setattr(torch.version, "cuda", cuda)
    monkeypatch.setattr(torch.version, "hip", hip, raising=False)
    report = laboratory_report()
    assert report.build == build and report.cuda_version == cuda
    assert str(report).splitlines()[0] == f"torch {torch.__version__} ({build})"


def test_a_build_without_torch_backends_mps_is_reported_not_fatal(monkeypatch, no_override):
    monkeypatch.delattr(torch.backends, "mps", raising=False)
    report = laboratory_report()
    assert report.devices["mps"] is False and report.devices["cpu"] is True


def test_report_prints_exactly_and_is_frozen():
    report = LaboratoryReport(
        torch_version="2.11.0+cu128",
        build="CUDA 12.8",
        cuda_version="12.8",
        threads=16,
        cpu_cores=32,
        devices={"cuda": True, "mps": False, "cpu": True},
        gpu_names=("NVIDIA H200", "NVIDIA H200"),
        picked=torch.device("cuda"),
        override=None,
    )
    assert str(report) == (
        "torch 2.11.0+cu128 (CUDA 12.8)\n"
        "threads: 16 for PyTorch's operations, 32 cores on this machine\n"
        "devices: cuda yes (NVIDIA H200, NVIDIA H200), mps no, cpu yes\n"
        "the course will use: cuda"
    )
    laptop = dataclasses.replace(
        report, build="CPU only", cuda_version=None, devices={"cuda": False, "mps": True, "cpu": True},
        gpu_names=(), picked=torch.device("cpu"), override="cpu",
    )
    assert str(laptop).splitlines()[2:] == ["devices: cuda no, mps yes, cpu yes", f"the course will use: cpu ({DEVICE_VARIABLE}=cpu)"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.threads = 1


# A first tensor, and the clash of devices


def test_device_clash_on_the_cpu_and_bad_devices(no_override):
    assert device_clash("cpu") is None
    assert device_clash(torch.device("cpu")) is None
    if pick_device().type == "cpu":
        assert device_clash() is None
    with pytest.raises(ValueError, match="got 'tpu'"):
        device_clash("tpu")


@needs_cuda
def test_device_clash_on_cuda_reports_pytorchs_message():
    message = device_clash("cuda")
    assert message is not None
    assert message.startswith("Expected all tensors to be on the same device")
    assert "cuda:0" in message and "cpu" in message
    # The one exception the lesson names: a 0-d CPU tensor joins a GPU tensor like a Python number.
    assert (torch.ones(2, device="cuda") + torch.tensor(1.0)).device.type == "cuda"


def test_to_returns_the_same_tensor_when_nothing_moves():
    x = torch.ones(2, 3)
    assert x.to("cpu") is x and x.to(torch.device("cpu")) is x
    assert x.to(pick_device("cpu"), torch.float64) is not x


# Counting and timing a matrix product


@pytest.mark.parametrize("n", [1, 2, 7, 64, 256])
def test_two_n_cubed_is_what_pytorchs_flop_counter_counts(n):
    a, b = torch.rand(n, n), torch.rand(n, n)
    for product in (lambda: a @ b, lambda: torch.mm(a, b), lambda: torch.matmul(a, b)):
        with FlopCounterMode(display=False) as counter:
            product()
        assert counter.get_total_flops() == 2 * n**3


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_time_matmul_returns_seconds_and_the_speed_they_make(dtype):
    timing = time_matmul(48, "cpu", dtype=dtype, repeat=2)
    assert isinstance(timing, MatmulTiming) and timing._fields == ("seconds", "gflops")
    assert isinstance(timing.seconds, float) and timing.seconds > 0
    assert timing.gflops == 2 * 48**3 / timing.seconds / 1e9
    assert time_matmul(1, "cpu", repeat=1).gflops > 0


def test_time_matmul_leaves_the_global_random_stream_alone():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    time_matmul(8, "cpu", repeat=1)
    assert torch.equal(torch.rand(3), expected)


def test_time_matmul_on_the_picked_device(no_override):
    assert time_matmul(32, repeat=1).gflops > 0


@needs_cuda
def test_time_matmul_on_cuda():
    timing = time_matmul(512, "cuda", repeat=3)
    assert timing.seconds > 0 and timing.gflops > 0


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n": 0}, ValueError, "n must be at least 1, got 0"),
        ({"n": -3}, ValueError, "n must be at least 1, got -3"),
        ({"n": 2.0}, TypeError, "n must be an int, got 2.0"),
        ({"n": True}, TypeError, "n must be an int, got True"),
        ({"n": 4, "repeat": 0}, ValueError, "repeat must be at least 1, got 0"),
        ({"n": 4, "dtype": torch.int64}, TypeError, "dtype must be a floating-point torch.dtype, got torch.int64"),
        ({"n": 4, "dtype": "float32"}, TypeError, "dtype must be a floating-point torch.dtype, got 'float32'"),
        ({"n": 4, "device": "tpu"}, ValueError, "got 'tpu'"),
    ],
)
def test_time_matmul_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        time_matmul(**kwargs)


def test_plot_matmul_speed_draws_a_line_per_setting_and_restores_threads():
    from matplotlib.figure import Figure

    threads = torch.get_num_threads()
    fig = plot_matmul_speed(sizes=(8, 16, 32), repeat=1)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    labels = [line.get_label() for line in fig.axes[0].lines]
    expected = 1 + (threads > 1) + device_available("cuda") + device_available("mps")
    assert len(labels) == expected and labels[0].startswith("CPU, ")
    assert all(list(line.get_xdata()) == [8, 16, 32] for line in fig.axes[0].lines)
    assert all(min(line.get_ydata()) > 0 for line in fig.axes[0].lines)
    assert torch.get_num_threads() == threads
    for bad in ((), (0, 8), (8.0,), "32", None):
        with pytest.raises(ValueError, match="sizes must be a non-empty sequence of positive ints"):
            plot_matmul_speed(sizes=bad)
    with pytest.raises(ValueError, match="repeat must be at least 1, got 0"):
        plot_matmul_speed(repeat=0)


# Dr. Hammer's traps


def test_trap_tensors_stay_on_the_cpu_unless_moved():
    assert torch.ones(3).device == torch.device("cpu")
    device = pick_device()
    assert torch.ones(3, device=device).device.type == device.type


def test_trap_an_indexless_device_is_not_its_indexed_self():
    assert torch.device("cuda") != torch.device("cuda:0")
    assert torch.device("cuda").type == torch.device("cuda:0").type
    assert torch.ones(2).device == torch.device("cpu")
    assert torch.device("cpu") != torch.device("cpu:0")


@needs_cuda
def test_trap_tensors_on_cuda_carry_an_index_pick_device_lacks():
    device = pick_device("cuda")
    x = torch.ones(2, device=device)
    assert x.device != device and x.device.type == device.type
    assert x.device == torch.device("cuda", torch.cuda.current_device())


def test_trap_time_it_warms_up_then_times_the_median():
    calls = []
    seconds = time_it(lambda: calls.append(1), repeat=3, warmup=2, device="cpu")
    assert len(calls) == 5 and seconds >= 0


@needs_cuda
def test_trap_an_unsynchronised_stopwatch_reads_far_too_little_on_cuda():
    a = torch.rand(4096, 4096, device="cuda")
    honest = time_it(lambda: a @ a, repeat=3, warmup=1, device="cuda")
    torch.cuda.synchronize()
    start = time.perf_counter()
    a @ a  # queued: the GPU is still busy when Python reads the clock
    hammer = time.perf_counter() - start
    torch.cuda.synchronize()
    assert hammer < honest / 4


# Challenges


def test_best_device_solution_passes_and_agrees_with_pick_device(no_override):
    assert check_best_device(best_device) is None
    assert best_device(DEVICE_PREFERENCE) == pick_device()
    assert best_device(["cpu"]) == torch.device("cpu")
    with pytest.raises(TypeError, match=r"preference must be a sequence of device kinds such as \('cuda', 'cpu'\), got 'cuda'"):
        best_device("cuda")
    with pytest.raises(ValueError, match=r"preference must hold kinds from \('cuda', 'mps', 'cpu'\), got 'gpu' in \('cpu', 'gpu'\)"):
        best_device(("cpu", "gpu"))
    with pytest.raises(ValueError, match="preference must name at least one kind of device"):
        best_device(())
    with pytest.raises(RuntimeError, match=r"none of preference=\('mps',\) is available on this machine"):
        best_device(("mps",), available=lambda kind: False)


def test_best_device_checker_rejects_wrong_attempts():
    def ignores_the_order(preference, available=device_available):
        return next(torch.device(k) for k in DEVICE_PREFERENCE if k in preference and available(k))

    def returns_a_string(preference, available=device_available):
        return best_device(preference, available).type

    def falls_back_to_the_cpu(preference, available=device_available):
        try:
            return best_device(preference, available)
        except RuntimeError:
            return torch.device("cpu")

    def trusts_any_kind(preference, available=device_available):
        for kind in preference:
            if available(kind):
                return torch.device(kind)
        raise RuntimeError("nothing available")

    def ignores_available(preference, available=device_available):
        return best_device(preference)

    for wrong in (ignores_the_order, returns_a_string, falls_back_to_the_cpu, trusts_any_kind, ignores_available):
        with pytest.raises(AssertionError):
            check_best_device(wrong)


def test_using_threads_solution_passes_and_restores():
    before = torch.get_num_threads()
    assert check_using_threads(using_threads) is None
    assert torch.get_num_threads() == before
    with pytest.raises(ZeroDivisionError):
        with using_threads(1):
            assert torch.get_num_threads() == 1
            1 / 0  # noqa: B018
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="num_threads must be at least 1, got 0"), using_threads(0):
        pass
    with pytest.raises(TypeError, match="num_threads must be an int, got True"), using_threads(True):
        pass


def test_using_threads_checker_rejects_wrong_attempts():
    from contextlib import contextmanager

    @contextmanager
    def forgets_finally(num_threads):
        before = torch.get_num_threads()
        torch.set_num_threads(num_threads)
        yield
        torch.set_num_threads(before)

    @contextmanager
    def restores_to_all_cores(num_threads):
        torch.set_num_threads(num_threads)
        try:
            yield
        finally:
            torch.set_num_threads(os.cpu_count() or 1)

    @contextmanager
    def swallows_errors(num_threads):
        before = torch.get_num_threads()
        torch.set_num_threads(num_threads)
        try:
            yield
        except Exception:
            pass
        finally:
            torch.set_num_threads(before)

    @contextmanager
    def no_checks(num_threads):
        before = torch.get_num_threads()
        torch.set_num_threads(max(1, int(num_threads)))
        try:
            yield
        finally:
            torch.set_num_threads(before)

    before = torch.get_num_threads()
    for wrong in (forgets_finally, restores_to_all_cores, swallows_errors, no_checks):
        with pytest.raises(AssertionError):
            check_using_threads(wrong)
        assert torch.get_num_threads() == before
