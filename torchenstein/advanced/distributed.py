r"""
# Distributed Data Parallel: One Monster, Many Laboratories

!!! torchenstein "The Professor speaks"
    One laboratory is never enough for a monster of ambition! Tonight I clone my laboratory: every clone
    holds the same monster, feeds it a different slice of the batch, and before each step the clones
    *whisper* their gradients to one another until they all agree. We build the whisper ourselves, an
    all-reduce passed hand to hand around a ring, prove it equal to PyTorch's, and then prove that
    `DistributedDataParallel` trains exactly the monster one big laboratory would have trained. All on
    two humble CPU cores, with the `gloo` backend: no GPU was harmed.

**You will learn to**

- start a process group (rank, world size, `MASTER_ADDR`/`MASTER_PORT`, `init_process_group("gloo")`),
  with `torch.multiprocessing.spawn` or with `torchrun`, and end it cleanly;
- build all-reduce from point-to-point `isend`/`irecv` as a ring (reduce-scatter, then all-gather), prove
  it equal to `dist.all_reduce`, and count the bytes each rank sends: $2\frac{N-1}{N}$ times the tensor;
- explain what `DistributedDataParallel` (DDP) does, and prove its gradients equal one process's
  gradients on the whole batch, with `no_sync` for gradient accumulation;
- shard a data set with `DistributedSampler`, save a checkpoint from rank 0 only, and compute what FSDP
  saves by sharding parameters, gradients and optimiser state;
- dodge four of Dr. Hammer's distributed blunders, one of which hangs a whole cluster.

## Processes, ranks and a process group

Data-parallel training runs $N$ copies of one program, each a separate operating-system **process**.
The $N$ of them form the **world**; `world_size` is $N$, and each process has a **rank**, its number from
$0$ to $N - 1$ (rank 0 traditionally does the printing and the saving). A **process group** is a set of
ranks that can talk to one another, and a **backend** is the library that carries the messages: `nccl`
between NVIDIA GPUs, `gloo` between CPUs (and GPUs, slowly). Operations that every rank of a group must
call together, such as summing a tensor over all ranks, are **collectives**.

Before they can talk, the ranks must find one another: the **rendezvous**. Rank 0 opens a small
key-value store on `MASTER_ADDR:MASTER_PORT`, and every other rank connects to it to swap addresses.
`init_process_group("gloo")` reads the two environment variables (together with `RANK` and `WORLD_SIZE`,
the `env://` method), or takes the address in a URL (`init_method="tcp://127.0.0.1:29500"`). On one
machine, ask the operating system for a free port at run time rather than hard-coding one, which a
neighbour's job may already hold. [`find_free_port`][torchenstein.advanced.distributed.find_free_port]
binds to port 0, which makes the system pick one (another program could in principle grab it before rank
0 does; `torchrun --standalone` avoids even that). [`process_group`][torchenstein.advanced.distributed.process_group]
wraps `init_process_group` and `destroy_process_group` in a `with` block, so the group is torn down even
when the code inside fails. A world of one rank runs right here, in this process:

```pycon
>>> import torch
>>> import torch.distributed as dist
>>> from torchenstein.advanced.distributed import find_free_port, process_group
>>> with process_group(rank=0, world_size=1, master_port=find_free_port()):
...     x = torch.tensor([1.0, 2.0])
...     dist.all_reduce(x)                      # the sum over one rank: x itself
...     print({"backend": dist.get_backend(), "rank": dist.get_rank(), "world size": dist.get_world_size(),
...            "sum": x.tolist()})
{'backend': 'gloo', 'rank': 0, 'world size': 1, 'sum': [1.0, 2.0]}
>>> dist.is_initialized()                       # the with block destroyed the group
False

```

With more ranks, something must start the processes. `torch.multiprocessing.spawn(fn, args, nprocs)`
starts `nprocs` fresh Python interpreters and calls `fn(rank, *args)` in each.
[`launch`][torchenstein.advanced.distributed.launch] does that for a function `fn(rank, world_size,
*args)`: it picks a port, sets `MASTER_ADDR` and `MASTER_PORT` in each child, creates the group with a
`timeout`, calls `fn`, destroys the group, hands back what every rank returned, and kills every child if
the whole run outlives its `timeout`. It is not run on this page (starting processes takes seconds), but
the tests run it, and so can you:

```python
from torchenstein.advanced.distributed import launch, ring_experiment
reports = launch(ring_experiment, 3, timeout=60)   # a list: what ranks 0, 1 and 2 returned
```

The other way in is `torchrun`, PyTorch's launcher: it starts the processes itself, sets `RANK`,
`LOCAL_RANK`, `WORLD_SIZE`, `MASTER_ADDR` and `MASTER_PORT` for each, restarts them if asked, and
`--standalone` makes it find a free port on its own. This lesson's module is such a script: it trains
the spiral classifier of [the training loop](../../training/loop/index.md) with everything this page
builds, and prints one line per rank:

```bash
torchrun --standalone --nproc_per_node=2 -m torchenstein.advanced.distributed --epochs 3
```

(`python -m torch.distributed.run` is the same program; add `--data-parallel ours` to train with the
hand-made data parallelism built below instead of DDP.) Its body,
[`train_spiral_ddp`][torchenstein.advanced.distributed.train_spiral_ddp], works under `launch` too.

## All-reduce, by hand, around a ring

**All-reduce** is the collective of data parallelism: every rank holds a tensor of the same shape, and
afterwards every rank holds their elementwise sum (or product, minimum, maximum). The obvious way,
everyone sends everything to rank 0 which sums and sends the sum back, makes rank 0 receive $N - 1$ whole
tensors: its network link becomes the bottleneck. The **ring all-reduce** keeps every link equally busy.
Arrange the ranks in a ring, rank $r$ sending only to rank $r + 1$ and receiving only from $r - 1$ (modulo
$N$), and cut each tensor into $N$ chunks:

1. **Reduce-scatter**, $N - 1$ steps: at step $s$ rank $r$ sends chunk $(r - s) \bmod N$ and adds the
   chunk it receives, $(r - s - 1) \bmod N$, into its own. Each chunk travels once around the ring,
   collecting one rank's contribution per hop, so afterwards rank $r$ holds the complete sum of chunk
   $(r + 1) \bmod N$.
2. **All-gather**, $N - 1$ more steps: at step $s$ rank $r$ sends chunk $(r + 1 - s) \bmod N$ and
   *overwrites* its copy of chunk $(r - s) \bmod N$ with what it receives, until every rank has every
   finished chunk.

[`ring_schedule`][torchenstein.advanced.distributed.ring_schedule] writes this table down, one row per
step, one `(send, receive)` pair of chunk indices per rank; what rank $r$ sends, rank $r + 1$ receives.
[`simulate_ring_all_reduce`][torchenstein.advanced.distributed.simulate_ring_all_reduce] plays it out in
one process, a list of tensors standing in for the ranks:

```pycon
>>> from torchenstein.advanced.distributed import ring_schedule, simulate_ring_all_reduce
>>> for step, pairs in enumerate(ring_schedule(3)):
...     print("reduce-scatter" if step < 2 else "all-gather    ", pairs)
reduce-scatter [(0, 2), (1, 0), (2, 1)]
reduce-scatter [(2, 1), (0, 2), (1, 0)]
all-gather     [(1, 0), (2, 1), (0, 2)]
all-gather     [(0, 2), (1, 0), (2, 1)]
>>> ranks = [torch.arange(7.0) * 10**r for r in range(3)]     # 7 elements on each of 3 ranks
>>> print("chunk sizes:", [len(chunk) for chunk in torch.tensor_split(ranks[0], 3)])
chunk sizes: [3, 2, 2]
>>> reduced = simulate_ring_all_reduce(ranks)
>>> [t.tolist() for t in reduced] == [sum(ranks).tolist()] * 3
True

```

The chunks come from `torch.tensor_split`, which accepts sizes that do not divide: 7 elements over 3
ranks make chunks of 3, 2 and 2 (and a tensor smaller than the world has empty chunks, which the ring
skips). [`ring_all_reduce`][torchenstein.advanced.distributed.ring_all_reduce] runs the same schedule
between real processes with `dist.isend` and `dist.irecv`: each step posts its send to the right and its
receive from the left *before* waiting on either, because a rank that waited for its own send to finish
before receiving could wait for a neighbour doing exactly the same. It reduces in place, like
`dist.all_reduce`, with the same `op` and `group` arguments, and returns the bytes it sent. The tests
launch 3 processes and prove it equal to `dist.all_reduce` for `SUM`, `PRODUCT`, `MIN` and `MAX`, in
int64 (exactly), float32 and float64 (to rounding: the two add in different orders), for sizes from 0 to
more than the world, divisible or not, on the whole world and on a 2-rank subgroup.

**The bytes.** Each rank sends $N - 1$ chunks in each phase, so about $2 (N - 1)$ chunks of
$\frac{1}{N}$ of the tensor:

$$
\text{bytes sent per rank} = 2 \, \frac{N - 1}{N} \, \text{size} ,
$$

exactly on average over the ranks, to a chunk's rounding for each one.
[`ring_bytes_per_rank`][torchenstein.advanced.distributed.ring_bytes_per_rank] counts them exactly, and
the tests check the count against the bytes `ring_all_reduce` really sent:

```pycon
>>> from torchenstein.advanced.distributed import ring_bytes_per_rank
>>> size = 10 * 4                                            # 10 float32 numbers: 40 bytes
>>> exact = ring_bytes_per_rank(numel=10, world_size=3, element_size=4)
>>> print("exact:", exact, "mean:", round(sum(exact) / 3, 2), "formula:", round(2 * (3 - 1) / 3 * size, 2))
exact: [56, 52, 52] mean: 53.33 formula: 53.33
>>> [round(sum(ring_bytes_per_rank(10**6, n, 4)) / n / (4 * 10**6), 3) for n in (2, 4, 8, 64)]
[1.0, 1.5, 1.75, 1.969]

```

The second line is the ring's great virtue: as the world grows, each rank sends less than twice the
tensor, however many ranks there are. The price is latency: $2 (N - 1)$ rounds of messages, which for
small tensors on a big world is too many (the first challenge builds an algorithm with fewer rounds).

## DistributedDataParallel: clones that agree

In **data parallelism** every rank holds a full copy (a **replica**) of the model and of the optimiser,
and each training step every rank:

1. runs forward and backward on its own **shard** of the global batch (the samples of this step, all
   ranks together);
2. all-reduces the gradients and divides them by $N$, so every rank holds the same *average* gradient;
3. takes the same optimiser step, from the same parameters, with the same gradient: the replicas stay
   identical, without ever sending a parameter.

The averaging is exactly right for a **mean** loss. With $N$ shards of $B$ samples each and per-sample
losses $\ell_i$, each rank's loss is $L_r = \frac{1}{B} \sum_{i \in r} \ell_i$ and

$$
\frac{1}{N} \sum_{r} \nabla L_r = \nabla \, \frac{1}{NB} \sum_{\text{all } i} \ell_i ,
$$

the gradient of the mean loss over the concatenated batch, as if one process had seen all $NB$ samples.
(With shards of different sizes the identity breaks: every rank counts equally, however few samples it
had.) Here is the identity in one process, three shards of a batch of twelve:

```pycon
>>> import torch.nn.functional as F
>>> from torchenstein.training.loop import make_spiral, spiral_classifier
>>> _ = torch.manual_seed(0)
>>> model = spiral_classifier(16)
>>> x, y = make_spiral(4)                                    # 12 points, 3 classes
>>> def gradient(inputs, targets):
...     model.zero_grad()
...     F.cross_entropy(model(inputs), targets).backward()   # the mean over the samples given
...     return torch.cat([p.grad.flatten() for p in model.parameters()])
>>> per_rank = [gradient(xs, ys) for xs, ys in zip(x.chunk(3), y.chunk(3))]
>>> torch.allclose(sum(per_rank) / 3, gradient(x, y), atol=1e-6)
True

```

Doing that by hand takes two collectives: at the start, **broadcast** rank 0's parameters to everyone
(one rank's tensor copied to all), because each rank initialised its own model from its own random
numbers; after every backward, all-reduce and divide.
[`broadcast_parameters`][torchenstein.advanced.distributed.broadcast_parameters] and
[`average_gradients`][torchenstein.advanced.distributed.average_gradients] are those two, the second
packing every gradient into one flat **bucket** and sending it round our own ring.

`torch.nn.parallel.DistributedDataParallel` does the same, faster. At construction it broadcasts rank 0's
parameters and buffers. During backward, hooks on the parameters fire as their gradients become ready, and
gradients are packed into buckets of a few megabytes (`bucket_cap_mb`), each all-reduced as soon as it fills,
in the background while backward is still computing the rest: communication overlaps computation. The
wrapper's `module` attribute is your model, and its `state_dict` keys gain a `module.` prefix
(`module.0.weight`; the tests pin it). Inside each rank, after the group exists, the training step is
the ordinary one:

```python
from torch.nn.parallel import DistributedDataParallel as DDP
ddp = DDP(spiral_classifier(16))               # broadcasts rank 0's weights to every rank
loss = F.cross_entropy(ddp(x_shard), y_shard)  # the mean over this rank's shard only
loss.backward()                                # gradients all-reduced and divided by N, bucket by bucket
optimizer.step()                               # the same step on every rank
```

(This page runs no DDP: constructing one imports PyTorch's compiler, `torch._dynamo`, which takes
seconds.)

The real proof needs real ranks. [`ddp_experiment`][torchenstein.advanced.distributed.ddp_experiment]
runs on every rank of a world and measures, against a single-process twin trained on the concatenated
batches: DDP's gradients after one step, our `average_gradients`' gradients, the parameters after several
SGD steps (DDP's and ours), whether the ranks' parameters are bit-for-bit identical, and gradient
accumulation under `no_sync` (below). The tests run it on 3 processes; every difference is at float32's
rounding, and across ranks exactly zero.

**Gradient accumulation** sums the gradients of several micro-batches before one optimiser step (with
each loss divided by the number of micro-batches, so the sum is a mean; see
[Gradient accumulation](../../tensors/accumulation/index.md)). Under DDP every backward would all-reduce, which is
wasted on all but the last micro-batch; inside `with ddp.no_sync():` backward only accumulates locally,
and the first backward outside it all-reduces the accumulated sum. The result is the gradient of one big
batch of $N \times \text{micro-batches} \times B$ samples, and `ddp_experiment` proves it (and that,
inside `no_sync`, the ranks' gradients really do still differ).

## DistributedSampler: who gets which samples

Each rank must see a different shard of every epoch (one pass over the data set).
`torch.utils.data.distributed.DistributedSampler(dataset, num_replicas, rank)` deals the indices like
cards: it shuffles them with a generator seeded with `seed + epoch` (the same on every rank, so the ranks
agree on the order), **pads** the list by repeating its first indices until its length divides by $N$,
and gives rank $r$ every $N$-th index starting at $r$. Given `num_replicas` and `rank`, it needs no
process group, so it runs right here, on 10 samples over 3 ranks:

```pycon
>>> from torch.utils.data.distributed import DistributedSampler
>>> data = list(range(10))
>>> [list(DistributedSampler(data, num_replicas=3, rank=r, shuffle=False)) for r in range(3)]
[[0, 3, 6, 9], [1, 4, 7, 0], [2, 5, 8, 1]]
>>> [list(DistributedSampler(data, num_replicas=3, rank=r, shuffle=False, drop_last=True)) for r in range(3)]
[[0, 3, 6], [1, 4, 7], [2, 5, 8]]

```

Samples 0 and 1 appear twice in an epoch: harmless for training, but an evaluation that averages over
the shards counts them twice. `drop_last=True` drops the tail instead (sample 9 is never seen that
epoch). The shuffled order is a new one each epoch *only if you tell the sampler the epoch*, with
`sampler.set_epoch(epoch)` before each one: Dr. Hammer forgets (below). The second challenge writes the
sampler from scratch.

## Saving: rank 0 writes, everyone waits

Every replica holds the same parameters, so one copy on disk is enough: rank 0 writes it. The others
must not run ahead, say to read it back or to delete the previous checkpoint, before it is complete, so
everyone meets at a **barrier** (a collective that returns only when every rank has reached it).
[`save_on_rank_zero`][torchenstein.advanced.distributed.save_on_rank_zero] is those two lines, writing
with [`atomic_save`][torchenstein.training.checkpoints.atomic_save] from
[Checkpoints](../../training/checkpoints/index.md), so that no reader ever finds half a file. Save
`ddp.module.state_dict()`, not `ddp.state_dict()`, so the keys carry no `module.` prefix and the file
loads into a plain model:

```pycon
>>> import tempfile
>>> from torchenstein.advanced.distributed import save_on_rank_zero
>>> with tempfile.TemporaryDirectory() as lab, process_group(master_port=find_free_port()):
...     path = f"{lab}/monster.pt"
...     save_on_rank_zero(model.state_dict(), path)             # with DDP: ddp.module.state_dict()
...     loaded = spiral_classifier(16)
...     print(loaded.load_state_dict(torch.load(path, weights_only=True)))
<All keys matched successfully>

```

## FSDP: stop copying, start sharding

DDP keeps a full copy of everything on every rank. Trained with Adam in float32, each parameter costs 4
bytes of weight, 4 of gradient and 8 of **optimiser state** (the two running averages Adam keeps per
parameter; see [Adam](../../training/adam/index.md)): 16 bytes, times $N$ ranks, for one model.
**Sharding** splits those tensors into $N$ pieces and keeps piece $r$ on rank $r$ only. ZeRO (Rajbhandari
et al., 2020) does it in three stages, and PyTorch's **FSDP** (Fully Sharded Data Parallel) implements the
last two:

| strategy | sharded | bytes per rank for $P$ parameters |
| --- | --- | --- |
| DDP (`no_shard`) | nothing | $16P$ |
| ZeRO-1 (`optimizer_state`, `ZeroRedundancyOptimizer`) | optimiser state | $8P + 8P/N$ |
| ZeRO-2 (`shard_grad_op`, FSDP `SHARD_GRAD_OP`) | + gradients | $4P + 12P/N$ |
| ZeRO-3 (`full_shard`, FSDP `FULL_SHARD`) | + parameters | $16P/N$ |

Why may the gradients be sharded? Rank $r$ updates only its own piece of the parameters, so it needs only
that piece of the summed gradient: a **reduce-scatter** (the first half of our ring!) delivers exactly
that, instead of a full all-reduce. Why the parameters? A layer's full weights are needed only while
that layer computes: FSDP **all-gathers** them (the second half of the ring) just before the layer's
forward, frees them after, and gathers them again for its backward. Memory falls as $1/N$; the traffic
per step grows from DDP's $2\frac{N-1}{N}$ to $3\frac{N-1}{N}$ times the parameters (two all-gathers and one
reduce-scatter), and the full parameters of the largest layer must still fit, briefly.
[`memory_per_rank`][torchenstein.advanced.distributed.memory_per_rank] evaluates the table (padding each
shard up to a whole element, as FSDP pads its flat parameter); for our spiral classifier and for a model
of 7 billion parameters:

```pycon
>>> from torchenstein.advanced.distributed import STRATEGIES, memory_per_rank
>>> P = sum(p.numel() for p in spiral_classifier(64).parameters())
>>> P
4547
>>> {s: memory_per_rank(P, 4, s) for s in STRATEGIES}                   # bytes per rank, 4 ranks
{'no_shard': 72752, 'optimizer_state': 45472, 'shard_grad_op': 31832, 'full_shard': 18192}
>>> {s: round(memory_per_rank(7 * 10**9, 8, s) / 2**30, 1) for s in STRATEGIES}   # GiB, 8 ranks
{'no_shard': 104.3, 'optimizer_state': 58.7, 'shard_grad_op': 35.9, 'full_shard': 13.0}

```

The 7-billion-parameter model does not fit an 80 GiB GPU with DDP, even before a single activation;
fully sharded over eight, it leaves most of the memory for activations.

![Four lines of training memory per rank against the number of ranks, on log scales, for a 7-billion-parameter model with Adam in float32: DDP flat, ZeRO-1 and ZeRO-2 falling towards the floors of their unsharded parts, FULL_SHARD falling as one over the number of ranks.](plot_memory_per_rank.svg)

## Dr. Hammer's traps

!!! hammer "Dr. Hammer's trap: forgetting `set_epoch`"
    Hammer shuffles with `DistributedSampler(shuffle=True)` and is pleased with himself. But the sampler
    seeds its shuffle with `seed + epoch`, and the epoch stays 0 until someone sets it: every epoch
    serves the samples in the same order, and his "shuffled" run is not.

    ```pycon
    >>> sampler = DistributedSampler(list(range(8)), num_replicas=2, rank=0, shuffle=True, seed=0)
    >>> hammer = [list(sampler) for epoch in range(3)]
    >>> print("same order every epoch:", hammer[0] == hammer[1] == hammer[2])
    same order every epoch: True
    >>> fixed = []
    >>> for epoch in range(3):
    ...     sampler.set_epoch(epoch)                 # before the epoch's first batch
    ...     fixed.append(list(sampler))
    >>> print("a new order each epoch:", fixed[0] != fixed[1] and fixed[1] != fixed[2])
    a new order each epoch: True

    ```

!!! hammer "Dr. Hammer's trap: dividing by the world size twice"
    Hammer knows the gradients must be averaged over the ranks, so he divides his loss by
    `world_size`. DDP averages too: his gradients come out $N$ times too small, which with SGD is
    a learning rate $N$ times smaller, and with Adam is invisible until the epsilon or the gradient
    clipping notices. The same arithmetic, three ranks played in one process:

    ```pycon
    >>> hammer = [gradient(xs, ys) / 3 for xs, ys in zip(x.chunk(3), y.chunk(3))]   # loss / world size
    >>> round((sum(per_rank) / 3).norm().item() / (sum(hammer) / 3).norm().item(), 4)
    3.0

    ```

    The tests show the real DDP doing the same. Keep the loss a plain mean over the rank's own samples,
    and let DDP do the dividing.

!!! hammer "Dr. Hammer's trap: every rank saves"
    Hammer calls `torch.save(model.state_dict(), "monster.pt")` on every rank: $N$ processes write one
    file at once, $N$ times the disk traffic, and a writer that opens the file a moment later truncates
    what another has just finished. Here rank 0 has written the file, rank 1 has opened it for writing
    and is halfway through, and rank 0 reads it back:

    ```pycon
    >>> import io
    >>> lab = tempfile.TemporaryDirectory()
    >>> path = f"{lab.name}/monster.pt"
    >>> torch.save(model.state_dict(), path)                  # rank 0: done
    >>> payload = io.BytesIO()
    >>> torch.save(model.state_dict(), payload)
    >>> with open(path, "wb") as file:                        # rank 1: "wb" empties the file first
    ...     _ = file.write(payload.getvalue()[:300])          # ... and has written 300 bytes so far
    >>> torch.load(path, weights_only=True)                   # rank 0 reads it back
    Traceback (most recent call last):
    ...
    RuntimeError: PytorchStreamReader failed reading zip archive: failed finding central directory...
    >>> lab.cleanup()

    ```

    The fix is `save_on_rank_zero`: one writer, an atomic write, and a barrier before anyone reads.

!!! hammer "Dr. Hammer's trap: a rank that skips a collective"
    Hammer logs the loss with `dist.all_reduce(loss)`, but only `if rank == 0:`. Rank 0 enters the
    all-reduce and waits for partners who never come; the others race ahead to the next step's
    gradient all-reduce, where they wait for rank 0. Nobody fails: the job just stops, forever, on
    every GPU it rents. Every rank must call every collective, in the same order. The group's `timeout`
    turns the silence into an error. Two ranks, played by two gloo groups in this one process
    ([`thread_groups`][torchenstein.advanced.distributed.thread_groups]), with a timeout of 0.3 s:

    ```pycon
    >>> from datetime import timedelta
    >>> from torchenstein.advanced.distributed import thread_groups
    >>> rank0, rank1 = thread_groups(2, timeout=timedelta(milliseconds=300))
    >>> loss = torch.tensor([0.5])
    >>> rank0.allreduce([loss]).wait()                          # rank 1 never calls it
    Traceback (most recent call last):
    ...
    RuntimeError: [...] Timed out waiting 300ms for recv operation to complete
    >>> rank0, rank1 = thread_groups(2, timeout=timedelta(seconds=10))
    >>> losses = [torch.tensor([0.5]), torch.tensor([1.5])]
    >>> works = [rank0.allreduce([losses[0]]), rank1.allreduce([losses[1]])]   # both ranks call it
    >>> [work.wait() for work in works], [t.item() for t in losses]
    ([True, True], [2.0, 2.0])

    ```

    PyTorch's default timeout is long, so that a slow step is not mistaken for a dead rank (NCCL's is
    shorter in recent releases):

    ```pycon
    >>> from torch.distributed.constants import default_pg_timeout
    >>> print("default timeout:", default_pg_timeout)
    default timeout: 0:30:00

    ```

    Set a shorter one in `init_process_group(timeout=...)` while debugging, and
    `TORCH_DISTRIBUTED_DEBUG=DETAIL` to have mismatched collectives reported by name.

## Challenges

**1. Recursive doubling.** The ring needs $2(N - 1)$ rounds of messages. For a world of $N = 2^k$ ranks,
*recursive doubling* needs $k$: in round $j$ every rank swaps its whole running sum with a partner and
adds what it receives, and after $k$ rounds everyone holds the total. Write
`recursive_doubling_partners(world_size)`: a list of rounds, each a list giving every rank's partner in
that round (partners must pair up: my partner's partner is me). Raise `ValueError` for a `world_size` that
is not a power of two. (It sends $k$ whole tensors per rank, against the ring's fewer than two: fine for
small tensors, where latency rules.)

**2. DistributedSampler from scratch.** Write `shard_indices(dataset_len, num_replicas, rank, *,
shuffle=True, seed=0, epoch=0, drop_last=False)`: the list of indices that
`DistributedSampler(range(dataset_len), num_replicas, rank, shuffle, seed, drop_last)` yields after
`set_epoch(epoch)`. Mind the padding when the padding is longer than the data set itself.

Check an attempt with `check_recursive_doubling_partners(my_function)` (or `check_shard_indices`), or
run `python -m torchenstein.challenges my_attempts.py`. The Professor's answers pass:

```pycon
>>> from torchenstein.advanced.distributed import (
...     check_recursive_doubling_partners, check_shard_indices, recursive_doubling_partners, shard_indices)
>>> check_recursive_doubling_partners(recursive_doubling_partners)
>>> check_shard_indices(shard_indices)

```
"""

from __future__ import annotations

import argparse
import math
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from torchenstein.lab import new_figure

if TYPE_CHECKING:  # matplotlib is imported only when a figure is drawn
    from matplotlib.figure import Figure

__all__ = [
    "STRATEGIES",
    "average_gradients",
    "broadcast_parameters",
    "check_recursive_doubling_partners",
    "check_shard_indices",
    "ddp_experiment",
    "find_free_port",
    "launch",
    "main",
    "memory_per_rank",
    "plot_memory_per_rank",
    "process_group",
    "recursive_doubling_partners",
    "ring_all_reduce",
    "ring_bytes_per_rank",
    "ring_experiment",
    "ring_schedule",
    "run_experiments",
    "save_on_rank_zero",
    "shard_indices",
    "simulate_ring_all_reduce",
    "skipped_collective_experiment",
    "thread_groups",
    "train_spiral_ddp",
]

# ----------------------------------------------------------------------------------------------------
# Process groups and launching


def find_free_port(host: str = "127.0.0.1") -> int:
    """Ask the operating system for a TCP port that is free right now, by binding to port 0.

    Args:
        host: the address to bind on.

    Returns:
        A port number. Another program may still take it before you do; on one machine that is rare.

    Examples:
        >>> 0 < find_free_port() < 65536
        True
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@contextmanager
def process_group(
    rank: int = 0,
    world_size: int = 1,
    *,
    backend: str = "gloo",
    master_addr: str = "127.0.0.1",
    master_port: int | None = None,
    timeout: float = 60.0,
) -> Iterator[None]:
    """Create the default process group for a ``with`` block, and destroy it afterwards, whatever happens.

    Every rank of the world enters the block with its own ``rank`` and the same ``world_size``,
    ``master_addr`` and ``master_port``. With ``master_port=None`` the address is read from the
    environment (``MASTER_ADDR``, ``MASTER_PORT``: the ``env://`` method ``torchrun`` uses); otherwise it
    is given as a ``tcp://`` URL and the environment is left alone.

    Args:
        rank: this process's rank, ``0 <= rank < world_size``.
        world_size: the number of ranks.
        backend: ``"gloo"`` (CPUs) or ``"nccl"`` (NVIDIA GPUs).
        master_addr: the address of rank 0's store.
        master_port: its port, or ``None`` to read both from the environment.
        timeout: seconds any collective (and the rendezvous) may wait before it raises.

    Raises:
        ValueError: if ``rank`` or ``world_size`` is out of range, or ``timeout`` is not positive.
        RuntimeError: if a process group already exists in this process.

    Examples:
        >>> with process_group(master_port=find_free_port()):
        ...     dist.get_world_size()
        1
        >>> with process_group(rank=1, world_size=1, master_port=find_free_port()):
        ...     pass
        Traceback (most recent call last):
        ...
        ValueError: rank must be an int with 0 <= rank < world_size=1, got 1
    """
    _check_rank(rank, world_size)
    _check_positive("timeout", timeout)
    if dist.is_initialized():
        raise RuntimeError("a default process group already exists in this process: destroy it first")
    init_method = "env://" if master_port is None else f"tcp://{master_addr}:{master_port}"
    dist.init_process_group(
        backend, init_method=init_method, rank=rank, world_size=world_size, timeout=timedelta(seconds=timeout)
    )
    try:
        yield
    finally:
        dist.destroy_process_group()


def launch(
    fn: Callable[..., Any], world_size: int, *args: Any, timeout: float = 60.0, start_method: str = "spawn"
) -> list[Any]:
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` fresh processes in a gloo group; return what each returned.

    The children are started as ``torch.multiprocessing.spawn`` starts them. Each sets ``MASTER_ADDR`` and
    ``MASTER_PORT`` (a free port picked here), joins the group with ``timeout`` on every collective, runs
    ``fn``, saves its result to a temporary folder and destroys the group. ``fn`` and ``args`` must be
    picklable (``fn`` a module-level function), and the results plain Python values or tensors.

    Args:
        fn: the function every rank runs.
        world_size: the number of processes, at least 1.
        *args: more arguments for ``fn``.
        timeout: seconds the whole run may take; then every child is killed and ``TimeoutError`` raised.
        start_method: ``"spawn"`` (fresh interpreters: safe everywhere, but each imports PyTorch again) or
            ``"fork"`` (POSIX only: copies of this process, which start in milliseconds with every module
            already imported; unsafe once this process has started CUDA or threads of its own that hold
            locks, and with a multi-threaded OpenMP pool).

    Returns:
        The results, in rank order.

    Raises:
        TimeoutError: if the run outlives ``timeout``.
        torch.multiprocessing.ProcessRaisedException: if a rank raised (its traceback is in the message).
    """
    _check_int("world_size", world_size, minimum=1)
    _check_positive("timeout", timeout)
    if start_method not in ("spawn", "fork", "forkserver"):
        raise ValueError(f"start_method must be 'spawn', 'fork' or 'forkserver', got {start_method!r}")
    import torch.multiprocessing as mp

    port = find_free_port()
    with tempfile.TemporaryDirectory(prefix="torchenstein-ranks-") as results:
        context = mp.start_processes(
            _spawned_rank,
            args=(fn, world_size, port, timeout, results, args),
            nprocs=world_size,
            join=False,
            start_method=start_method,
        )
        deadline = time.monotonic() + timeout
        try:
            # join returns False while some child still runs, and raises as soon as one has failed.
            while not context.join(timeout=max(0.1, deadline - time.monotonic())):
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"the {world_size} ranks did not finish within timeout={timeout} s")
        finally:
            for process in context.processes:
                if process.is_alive():
                    process.kill()
                process.join()
        return [torch.load(os.path.join(results, f"rank{r}.pt"), weights_only=True) for r in range(world_size)]


def _spawned_rank(
    rank: int, fn: Callable[..., Any], world_size: int, port: int, timeout: float, results: str, args: tuple
) -> None:
    # The environment of this child only: what torchrun would have set for it.
    os.environ.update(
        {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "WORLD_SIZE": str(world_size)}
    )
    # Each rank gets one thread: the ranks already share the machine's cores among themselves.
    torch.set_num_threads(1)
    with process_group(rank, world_size, timeout=timeout):
        result = fn(rank, world_size, *args)
    torch.save(result, os.path.join(results, f"rank{rank}.pt"))


def thread_groups(world_size: int, timeout: timedelta = timedelta(seconds=10)) -> list[dist.ProcessGroup]:
    """A toy world inside one process: one gloo group per rank, created on threads, sharing a memory store.

    Useful to watch a collective (or its absence) without starting processes. The groups are not the
    default group, so use their own methods: ``group.allreduce([tensor]).wait()``.

    Args:
        world_size: the number of ranks, at least 1.
        timeout: how long each collective may wait.

    Returns:
        The groups, rank 0 first.

    Examples:
        >>> a, b = thread_groups(2)
        >>> tensors = [torch.ones(2), torch.ones(2)]
        >>> _ = [w.wait() for w in (a.allreduce([tensors[0]]), b.allreduce([tensors[1]]))]
        >>> tensors[0].tolist()
        [2.0, 2.0]
    """
    _check_int("world_size", world_size, minimum=1)
    store = dist.HashStore()
    groups: list[Any] = [None] * world_size

    # Creating a group is a rendezvous: each constructor waits for the others, so each needs its own thread.
    def create(rank: int) -> None:
        groups[rank] = dist.ProcessGroupGloo(store, rank, world_size, timeout)

    threads = [threading.Thread(target=create, args=(rank,)) for rank in range(world_size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return groups


# ----------------------------------------------------------------------------------------------------
# The ring all-reduce


def ring_schedule(world_size: int) -> list[list[tuple[int, int]]]:
    """The ring all-reduce's chunk indices: per step, per rank, ``(chunk sent right, chunk received from left)``.

    The first ``world_size - 1`` steps are the reduce-scatter (the received chunk is added), the last
    ``world_size - 1`` the all-gather (the received chunk replaces the old one).

    Args:
        world_size: the number of ranks $N$, at least 1.

    Returns:
        ``2 * (N - 1)`` steps, each a list of ``N`` pairs.

    Examples:
        >>> ring_schedule(2)
        [[(0, 1), (1, 0)], [(1, 0), (0, 1)]]
        >>> ring_schedule(1)
        []
    """
    _check_int("world_size", world_size, minimum=1)
    n = world_size
    reduce_scatter = [[((r - s) % n, (r - s - 1) % n) for r in range(n)] for s in range(n - 1)]
    all_gather = [[((r + 1 - s) % n, (r - s) % n) for r in range(n)] for s in range(n - 1)]
    return reduce_scatter + all_gather


def simulate_ring_all_reduce(tensors: Sequence[Tensor]) -> list[Tensor]:
    """Play the ring all-reduce (sum) in one process: ``tensors[r]`` is rank ``r``'s tensor.

    Every step's messages are taken before any is delivered, as if all ranks sent at once.

    Args:
        tensors: one tensor per rank, all of one shape.

    Returns:
        Each rank's result (new tensors; the inputs are left alone).

    Raises:
        ValueError: if ``tensors`` is empty or the shapes differ.

    Examples:
        >>> [t.tolist() for t in simulate_ring_all_reduce([torch.tensor([1, 2]), torch.tensor([10, 20])])]
        [[11, 22], [11, 22]]
    """
    _check_same_shapes(tensors)
    n = len(tensors)
    # Each rank's tensor, flattened and cut into N chunks (views into its own copy).
    buffers = [t.detach().clone().reshape(-1) for t in tensors]
    chunks = [list(torch.tensor_split(b, n)) for b in buffers]
    for step, pairs in enumerate(ring_schedule(n)):
        # What every rank sends this step, copied before anyone changes anything.
        outgoing = [chunks[r][pairs[r][0]].clone() for r in range(n)]
        for r in range(n):
            received = outgoing[(r - 1) % n]  # from the left neighbour
            target = chunks[r][pairs[r][1]]
            if step < n - 1:
                target.add_(received)
            else:
                target.copy_(received)
    return [b.reshape(t.shape) for b, t in zip(buffers, tensors, strict=True)]


_COMBINE: dict[Any, Callable[[Tensor, Tensor], Tensor]] = {
    dist.ReduceOp.SUM: torch.add,
    dist.ReduceOp.PRODUCT: torch.mul,
    dist.ReduceOp.MIN: torch.minimum,
    dist.ReduceOp.MAX: torch.maximum,
}


def ring_all_reduce(tensor: Tensor, op: Any = dist.ReduceOp.SUM, group: dist.ProcessGroup | None = None) -> int:
    """All-reduce ``tensor`` in place from point-to-point messages, as a ring; a twin of ``dist.all_reduce``.

    Every rank of ``group`` must call it with a tensor of the same shape and dtype.

    Args:
        tensor: this rank's contiguous tensor; on return it holds the reduction over all ranks.
        op: ``dist.ReduceOp.SUM``, ``PRODUCT``, ``MIN`` or ``MAX``.
        group: the process group (``None``: the default, whole world).

    Returns:
        The number of bytes this rank sent.

    Raises:
        TypeError: if ``tensor`` is not a contiguous tensor.
        ValueError: if ``op`` is not one of the four.
    """
    _check_ring_arguments(tensor, op)
    n = dist.get_world_size(group)
    rank = dist.get_rank(group)
    # Point-to-point calls name their peer by its rank in the whole world, not in the group.
    right = (rank + 1) % n if group is None else dist.get_global_rank(group, (rank + 1) % n)
    left = (rank - 1) % n if group is None else dist.get_global_rank(group, (rank - 1) % n)
    chunks = torch.tensor_split(tensor.view(-1), n)  # views: writing a chunk writes the tensor
    combine = _COMBINE[op]
    sent = 0
    for step, pairs in enumerate(ring_schedule(n)):
        send_chunk, receive_chunk = chunks[pairs[rank][0]], chunks[pairs[rank][1]]
        incoming = torch.empty_like(receive_chunk)
        # Post both before waiting on either: two neighbours that each waited for their own send first
        # could wait for each other. Empty chunks (tensors smaller than the world) are skipped by both sides.
        requests = []
        if send_chunk.numel() > 0:
            requests.append(dist.isend(send_chunk, right, group=group))
            sent += send_chunk.numel() * send_chunk.element_size()
        if receive_chunk.numel() > 0:
            requests.append(dist.irecv(incoming, left, group=group))
        for request in requests:
            request.wait()
        # Reduce-scatter adds what arrived; all-gather keeps it, because it is already the finished chunk.
        receive_chunk.copy_(combine(receive_chunk, incoming) if step < n - 1 else incoming)
    return sent


def ring_bytes_per_rank(numel: int, world_size: int, element_size: int = 4) -> list[int]:
    """The bytes each rank sends in a ring all-reduce of ``numel`` elements of ``element_size`` bytes.

    Args:
        numel: elements in the tensor.
        world_size: the number of ranks.
        element_size: bytes per element (4 for float32).

    Returns:
        One count per rank; their mean is $2 (N - 1) / N$ times the tensor's bytes.

    Examples:
        >>> ring_bytes_per_rank(8, 2, element_size=4)
        [32, 32]
    """
    _check_int("numel", numel, minimum=0)
    _check_int("world_size", world_size, minimum=1)
    _check_int("element_size", element_size, minimum=1)
    sizes = [len(c) for c in torch.tensor_split(torch.empty(numel, dtype=torch.uint8), world_size)]
    return [
        sum(sizes[pairs[rank][0]] for pairs in ring_schedule(world_size)) * element_size for rank in range(world_size)
    ]


# ----------------------------------------------------------------------------------------------------
# Data parallelism by hand, and DDP


def broadcast_parameters(module: nn.Module, src: int = 0, group: dist.ProcessGroup | None = None) -> None:
    """Copy rank ``src``'s parameters and buffers into every rank's ``module``, in place.

    Args:
        module: this rank's replica.
        src: the global rank whose values win.
        group: the process group (``None``: the whole world).
    """
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor, src, group=group)


def average_gradients(module: nn.Module, group: dist.ProcessGroup | None = None) -> None:
    """Replace every gradient of ``module`` by its average over the ranks, as DDP does after backward.

    All gradients travel in one flat bucket, around `ring_all_reduce`. Parameters without a gradient
    count as zeros, so every rank sends a bucket of the same size.

    Args:
        module: this rank's replica, after ``backward``.
        group: the process group (``None``: the whole world).
    """
    params = [p for p in module.parameters() if p.requires_grad]
    bucket = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
    ring_all_reduce(bucket, group=group)
    bucket /= dist.get_world_size(group)
    # Unpack the bucket back into the gradients, parameter by parameter.
    for p, piece in zip(params, bucket.split([p.numel() for p in params]), strict=True):
        p.grad = piece.view_as(p).clone()


def save_on_rank_zero(obj: object, path: str | os.PathLike, group: dist.ProcessGroup | None = None) -> None:
    """Save ``obj`` from rank 0 only (atomically), then wait at a barrier until every rank gets here.

    Args:
        obj: what to save (a ``state_dict``; rank 0's is the one written).
        path: the file; its folder must exist on rank 0.
        group: the process group (``None``: the whole world).
    """
    from torchenstein.training.checkpoints import atomic_save

    if dist.get_rank(group) == 0:
        atomic_save(obj, path)
    dist.barrier(group=group)


def _flat_parameters(module: nn.Module) -> Tensor:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()])


def _flat_gradients(module: nn.Module) -> Tensor:
    return torch.cat([p.grad.reshape(-1) for p in module.parameters()])


def ddp_experiment(
    rank: int, world_size: int, *, steps: int = 3, batch_size: int = 4, micro_batches: int = 2, seed: int = 0
) -> dict[str, float | bool]:
    """Run on every rank: DDP, and our data parallelism by hand, against one process on the whole batch.

    Every rank builds the same data and a *single-process twin* of the model, which trains on the
    concatenated batches of all ranks. Each rank's replica starts from its own random weights (DDP and
    `broadcast_parameters` must make them agree). Differences are maximum absolute differences.

    Args:
        rank: this rank.
        world_size: the number of ranks.
        steps: SGD steps for the comparison of parameters.
        batch_size: samples per rank per step.
        micro_batches: micro-batches per rank for the ``no_sync`` accumulation.
        seed: seeds the data and the twin's initial weights.

    Returns:
        ``"replicas start equal"``, ``"gradient vs whole batch"`` (DDP after one step),
        ``"ours vs DDP gradient"``, ``"hammer ratio"`` (correct gradient norm over Hammer's, with the loss
        divided by the world size), ``"DDP vs twin after steps"``, ``"ours vs twin after steps"``,
        ``"ranks identical"`` (parameters bit for bit), ``"no_sync vs big batch"``,
        ``"no_sync grads differ across ranks"``.
    """
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel as DDP

    from torchenstein.training.loop import make_spiral, spiral_classifier

    loss_fn = F.cross_entropy
    x, y = make_spiral(64, seed=seed)  # the same 192 points on every rank
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))

    def batch(step: int, ranks: range | None = None, size: int = batch_size) -> tuple[Tensor, Tensor]:
        # The global batch of a step is a slice of one fixed order; rank r's shard is its r-th part.
        idx = order.roll(-(step * world_size * size))[: world_size * size]
        if ranks is not None:
            idx = idx.view(world_size, size)[ranks].reshape(-1)
        return x[idx], y[idx]

    def mine(step: int, size: int = batch_size) -> tuple[Tensor, Tensor]:
        return batch(step, range(rank, rank + 1), size)

    torch.manual_seed(seed + 1)  # rank 0's initialisation, which DDP's broadcast hands to every rank
    twin = spiral_classifier(16)
    report: dict[str, float | bool] = {}

    # One step: DDP's gradient against the twin's on the concatenated global batch.
    torch.manual_seed(seed + 1 + rank)  # every rank a different initialisation
    model = DDP(spiral_classifier(16))
    report["replicas start equal"] = bool(torch.equal(_flat_parameters(model.module), _flat_parameters(twin)))
    xs, ys = mine(0)
    loss_fn(model(xs), ys).backward()
    inputs, targets = batch(0)
    twin.zero_grad()
    loss_fn(twin(inputs), targets).backward()
    report["gradient vs whole batch"] = (_flat_gradients(model.module) - _flat_gradients(twin)).abs().max().item()

    # Ours: broadcast rank 0's weights, average the gradients around our ring.
    torch.manual_seed(seed + 1 + rank)
    ours = spiral_classifier(16)
    broadcast_parameters(ours)
    loss_fn(ours(xs), ys).backward()
    average_gradients(ours)
    report["ours vs DDP gradient"] = (_flat_gradients(ours) - _flat_gradients(model.module)).abs().max().item()

    # Dr. Hammer divides by the world size on top of DDP's own averaging.
    model.zero_grad()
    (loss_fn(model(xs), ys) / world_size).backward()
    report["hammer ratio"] = _flat_gradients(twin).norm().item() / _flat_gradients(model.module).norm().item()

    # Several SGD steps: DDP, ours and the twin must walk the same path.
    twin_opt = torch.optim.SGD(twin.parameters(), lr=0.5)
    ddp_opt = torch.optim.SGD(model.parameters(), lr=0.5)
    ours_opt = torch.optim.SGD(ours.parameters(), lr=0.5)
    with torch.no_grad():  # restart all three from rank 0's weights, which the twin has
        for p_twin, p_ddp, p_ours in zip(twin.parameters(), model.module.parameters(), ours.parameters(), strict=True):
            p_ddp.copy_(p_twin)
            p_ours.copy_(p_twin)
    for step in range(steps):
        inputs, targets = batch(step)
        twin_opt.zero_grad()
        loss_fn(twin(inputs), targets).backward()
        twin_opt.step()
        xs, ys = mine(step)
        ddp_opt.zero_grad()
        loss_fn(model(xs), ys).backward()
        ddp_opt.step()
        ours_opt.zero_grad()
        loss_fn(ours(xs), ys).backward()
        average_gradients(ours)
        ours_opt.step()
    twin_params = _flat_parameters(twin)
    report["DDP vs twin after steps"] = (_flat_parameters(model.module) - twin_params).abs().max().item()
    report["ours vs twin after steps"] = (_flat_parameters(ours) - twin_params).abs().max().item()
    gathered = [torch.empty_like(twin_params) for _ in range(world_size)]
    dist.all_gather(gathered, _flat_parameters(model.module))
    report["ranks identical"] = all(torch.equal(g, gathered[0]) for g in gathered)

    # Gradient accumulation: micro-batches under no_sync, the last one synchronised.
    model.zero_grad()
    size = batch_size * micro_batches
    xs, ys = mine(steps, size)
    pieces = list(zip(xs.split(batch_size), ys.split(batch_size), strict=True))
    with model.no_sync():
        for inputs, targets in pieces[:-1]:
            (loss_fn(model(inputs), targets) / micro_batches).backward()
    local = _flat_gradients(model.module)
    everyone = [torch.empty_like(local) for _ in range(world_size)]
    dist.all_gather(everyone, local)
    report["no_sync grads differ across ranks"] = world_size > 1 and not torch.equal(everyone[0], everyone[1])
    inputs, targets = pieces[-1]
    (loss_fn(model(inputs), targets) / micro_batches).backward()
    inputs, targets = batch(steps, size=size)
    twin.zero_grad()
    loss_fn(twin(inputs), targets).backward()
    report["no_sync vs big batch"] = (_flat_gradients(model.module) - _flat_gradients(twin)).abs().max().item()
    return report


def ring_experiment(
    rank: int, world_size: int, sizes: Sequence[int] = (0, 1, 2, 5, 7, 10, 33)
) -> list[dict[str, Any]]:
    """Run on every rank: `ring_all_reduce` against ``dist.all_reduce``, on the world and on every smaller prefix group.

    Args:
        rank: this rank.
        world_size: the number of ranks.
        sizes: tensor sizes to try.

    Returns:
        One dict per case this rank took part in: ``world``, ``dtype``, ``op``, ``numel``, ``max diff``,
        ``exact`` (bitwise equal), ``bytes sent`` and ``bytes expected`` (from `ring_bytes_per_rank`).
    """
    cases = []
    # new_group is itself a collective: every rank creates every group, members or not.
    groups = {n: dist.new_group(list(range(n))) for n in range(2, world_size)}
    groups[world_size] = None
    for n, group in groups.items():
        if rank >= n:
            continue
        for dtype in (torch.int64, torch.float32, torch.float64):
            for op_name in ("SUM", "PRODUCT", "MIN", "MAX"):
                op = getattr(dist.ReduceOp, op_name)
                for numel in sizes:
                    generator = torch.Generator().manual_seed(1000 * rank + numel)
                    if dtype.is_floating_point:
                        data = torch.randn(numel, generator=generator, dtype=dtype)
                    else:
                        data = torch.randint(-5, 6, (numel,), generator=generator, dtype=dtype)
                    ours, theirs = data.clone(), data.clone()
                    sent = ring_all_reduce(ours, op, group=group)
                    dist.all_reduce(theirs, op, group=group)
                    cases.append({
                        "world": n, "dtype": str(dtype), "op": op_name, "numel": numel,
                        "max diff": (ours - theirs).abs().max().item() if numel else 0.0,
                        "exact": bool(torch.equal(ours, theirs)), "bytes sent": sent,
                        "bytes expected": ring_bytes_per_rank(numel, n, data.element_size())[rank],
                    })  # fmt: skip
    return cases


def skipped_collective_experiment(rank: int, world_size: int, timeout: float = 0.5) -> str | None:
    """Run on every rank: rank 0 all-reduces on a group with a short timeout, and the others skip it.

    Returns:
        Rank 0: the error its all-reduce raised (``None`` if, impossibly, it returned). Other ranks: ``None``.
    """
    group = dist.new_group(list(range(world_size)), timeout=timedelta(seconds=timeout))
    message = None
    if rank == 0:
        try:
            dist.all_reduce(torch.ones(2), group=group)
        except RuntimeError as error:
            message = str(error)
    # Everyone meets again on the default group, so no rank leaves while rank 0 is still waiting.
    dist.barrier()
    return message


def run_experiments(rank: int, world_size: int, directory: str) -> dict[str, Any]:
    """Run on every rank: the ring, DDP, a checkpoint from rank 0 and a skipped collective, in one launch.

    Args:
        rank: this rank.
        world_size: the number of ranks.
        directory: a folder every rank can read, for the checkpoint.

    Returns:
        ``{"ring": ..., "ddp": ..., "checkpoint loads on every rank": bool, "ddp first key": str,
        "train with ddp": ..., "train with ours": ..., "skipped collective": ...}``.
    """
    from torchenstein.training.loop import spiral_classifier

    report: dict[str, Any] = {"ring": ring_experiment(rank, world_size), "ddp": ddp_experiment(rank, world_size)}
    torch.manual_seed(rank)
    from torch.nn.parallel import DistributedDataParallel as DDP

    model = DDP(spiral_classifier(8))
    path = os.path.join(directory, "monster.pt")
    save_on_rank_zero(model.module.state_dict(), path)
    loaded = torch.load(path, weights_only=True)
    report["checkpoint loads on every rank"] = all(
        torch.equal(loaded[k], v) for k, v in model.module.state_dict().items()
    )
    report["ddp first key"] = next(iter(model.state_dict()))
    report["train with ddp"] = train_spiral_ddp(rank, world_size, epochs=2, data_parallel="ddp")
    report["train with ours"] = train_spiral_ddp(rank, world_size, epochs=2, data_parallel="ours")
    report["skipped collective"] = skipped_collective_experiment(rank, world_size)
    return report


# ----------------------------------------------------------------------------------------------------
# The torchrun script: train the spiral with everything above


def train_spiral_ddp(
    rank: int,
    world_size: int,
    *,
    epochs: int = 3,
    batch_size: int = 16,
    checkpoint: str | None = None,
    data_parallel: str = "ddp",
) -> dict[str, float]:
    """Train the spiral classifier with DDP (or ours) and a ``DistributedSampler``; save from rank 0.

    Needs an initialised default process group (``launch`` or ``torchrun`` makes one).

    Args:
        rank: this rank.
        world_size: the number of ranks.
        epochs: passes over the data set.
        batch_size: samples per rank per step.
        checkpoint: a file to save the trained weights to from rank 0, or ``None``.
        data_parallel: ``"ddp"`` (``DistributedDataParallel``) or ``"ours"`` (`broadcast_parameters` and
            `average_gradients`, which skip DDP's seconds-long import of ``torch._dynamo``).

    Returns:
        ``{"loss": last loss on this rank, "checksum": sum of the parameters, "samples": samples this
        rank saw}``.
    """
    import torch.nn.functional as F
    from torch.nn.parallel import DistributedDataParallel as DDP
    from torch.utils.data import DataLoader, TensorDataset
    from torch.utils.data.distributed import DistributedSampler

    from torchenstein.training.loop import make_spiral, manual_sgd_step, spiral_classifier

    if data_parallel not in ("ddp", "ours"):
        raise ValueError(f"data_parallel must be 'ddp' or 'ours', got {data_parallel!r}")
    x, y = make_spiral(100)
    dataset = TensorDataset(x, y)
    sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=0)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler)
    torch.manual_seed(rank)  # each rank its own initial weights: rank 0's are broadcast to all
    net = spiral_classifier(32)
    model = DDP(net) if data_parallel == "ddp" else net
    if data_parallel == "ours":
        broadcast_parameters(net)
    loss, samples = torch.tensor(float("nan")), 0
    for epoch in range(epochs):
        sampler.set_epoch(epoch)  # a new shuffle every epoch, the same on every rank
        for inputs, targets in loader:
            net.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(inputs), targets)
            loss.backward()
            if data_parallel == "ours":
                average_gradients(net)
            # Plain SGD by hand, bit for bit torch.optim.SGD's step (whose first call imports torch._dynamo).
            manual_sgd_step(net.parameters(), lr=0.5)
            samples += len(targets)
    if checkpoint is not None:
        save_on_rank_zero(net.state_dict(), checkpoint)  # with DDP, net is model.module: no "module." prefix
    return {"loss": loss.item(), "checksum": _flat_parameters(net).sum().item(), "samples": samples}


def main(argv: Sequence[str] | None = None) -> int:
    """The ``torchrun`` entry point: read the rank from the environment, train, print one line per rank."""
    parser = argparse.ArgumentParser(description="Train the spiral classifier with DDP (run under torchrun).")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--checkpoint", default=None, help="a file rank 0 saves the trained weights to")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds any collective may wait")
    parser.add_argument("--data-parallel", choices=("ddp", "ours"), default="ddp")
    options = parser.parse_args(argv)
    rank, world_size = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if "MASTER_PORT" not in os.environ:  # run without torchrun: a world of one
        os.environ["MASTER_PORT"] = str(find_free_port())
    torch.set_num_threads(1)
    with process_group(rank, world_size, timeout=options.timeout):
        result = train_spiral_ddp(
            rank,
            world_size,
            epochs=options.epochs,
            batch_size=options.batch_size,
            checkpoint=options.checkpoint,
            data_parallel=options.data_parallel,
        )
    # One write per line: the ranks share one terminal, and print's two writes could interleave.
    sys.stdout.write(
        f"rank {rank}/{world_size}: samples={result['samples']} loss={result['loss']:.4f} "
        f"checksum={result['checksum']:.6f}\n"
    )
    sys.stdout.flush()
    return 0


# ----------------------------------------------------------------------------------------------------
# Sharding memory, by formula

STRATEGIES = ("no_shard", "optimizer_state", "shard_grad_op", "full_shard")
"""What is sharded: nothing (DDP), the optimiser state (ZeRO-1), plus gradients (ZeRO-2), plus parameters (ZeRO-3)."""


def memory_per_rank(
    num_params: int,
    world_size: int,
    strategy: str = "no_shard",
    *,
    param_bytes: int = 4,
    grad_bytes: int = 4,
    optimizer_bytes: int = 8,
) -> int:
    """Bytes of parameters, gradients and optimiser state one rank holds (activations not included).

    A sharded tensor of ``num_params`` elements keeps ``ceil(num_params / world_size)`` on each rank, as
    FSDP pads its flat parameter to a multiple of the world size.

    Args:
        num_params: parameters in the model.
        world_size: the number of ranks.
        strategy: one of `STRATEGIES`.
        param_bytes: bytes per parameter (4: float32).
        grad_bytes: bytes per gradient element.
        optimizer_bytes: bytes of optimiser state per parameter (8: Adam's two float32 averages).

    Returns:
        Bytes per rank.

    Raises:
        ValueError: if ``strategy`` is unknown or a count is out of range.

    Examples:
        >>> memory_per_rank(1000, 4, "full_shard"), memory_per_rank(1000, 4, "no_shard")
        (4000, 16000)
        >>> memory_per_rank(1000, 4, "zero3")
        Traceback (most recent call last):
        ...
        ValueError: strategy must be one of ('no_shard', 'optimizer_state', 'shard_grad_op', 'full_shard'), got 'zero3'
    """
    _check_int("num_params", num_params, minimum=0)
    _check_int("world_size", world_size, minimum=1)
    for name, value in (("param_bytes", param_bytes), ("grad_bytes", grad_bytes), ("optimizer_bytes", optimizer_bytes)):
        _check_int(name, value, minimum=0)
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    full, shard = num_params, math.ceil(num_params / world_size)
    sharded = STRATEGIES[1 : STRATEGIES.index(strategy) + 1]  # optimiser state first, then grads, then params
    return (
        (shard if "full_shard" in sharded else full) * param_bytes
        + (shard if "shard_grad_op" in sharded else full) * grad_bytes
        + (shard if "optimizer_state" in sharded else full) * optimizer_bytes
    )


def plot_memory_per_rank(num_params: int = 7 * 10**9, max_world_size: int = 64) -> Figure:
    """Draw training memory per rank against the number of ranks, for each sharding strategy.

    Args:
        num_params: parameters in the model (default: 7 billion).
        max_world_size: the largest world, a power of two.

    Returns:
        The figure.
    """
    _check_int("num_params", num_params, minimum=1)
    _check_int("max_world_size", max_world_size, minimum=2)
    worlds = [2**k for k in range(int(math.log2(max_world_size)) + 1)]
    labels = {
        "no_shard": "DDP (nothing sharded)",
        "optimizer_state": "ZeRO-1 (optimiser state)",
        "shard_grad_op": "ZeRO-2 / SHARD_GRAD_OP (+ gradients)",
        "full_shard": "ZeRO-3 / FULL_SHARD (+ parameters)",
    }
    fig, (ax,) = new_figure()
    for strategy in STRATEGIES:
        gib = [memory_per_rank(num_params, n, strategy) / 2**30 for n in worlds]
        ax.plot(worlds, gib, marker="o", label=labels[strategy])
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("ranks")
    ax.set_ylabel("GiB per rank (weights, gradients, Adam state)")
    ax.set_title(f"Training memory per rank, {num_params / 1e9:g}B parameters, float32 + Adam")
    ax.legend(frameon=False)
    return fig


# ----------------------------------------------------------------------------------------------------
# Challenges


def recursive_doubling_partners(world_size: int) -> list[list[int]]:
    """Challenge solution: each round's partner of every rank, for recursive-doubling all-reduce.

    In round ``j`` rank ``r`` pairs with ``r XOR 2**j``: ranks that differ only in bit ``j``.

    Args:
        world_size: the number of ranks, a power of two.

    Returns:
        ``log2(world_size)`` rounds, each a list of ``world_size`` partners.

    Raises:
        ValueError: if ``world_size`` is not a power of two.

    Examples:
        >>> recursive_doubling_partners(4)
        [[1, 0, 3, 2], [2, 3, 0, 1]]
    """
    _check_int("world_size", world_size, minimum=1)
    if world_size & (world_size - 1):
        raise ValueError(f"world_size must be a power of two, got {world_size}")
    return [[r ^ (1 << j) for r in range(world_size)] for j in range(world_size.bit_length() - 1)]


def check_recursive_doubling_partners(candidate: Callable[[int], list[list[int]]]) -> None:
    """Raise ``AssertionError`` with a hint if ``candidate`` is not a correct ``recursive_doubling_partners``.

    Any schedule passes that pairs the ranks up in ``log2(N)`` rounds and leaves every rank with the sum.

    Examples:
        >>> check_recursive_doubling_partners(recursive_doubling_partners)
    """
    for n in (1, 2, 4, 8, 16):
        rounds = candidate(n)
        where = f"recursive_doubling_partners({n})"
        assert isinstance(rounds, list), f"{where}: expected a list of rounds, got {type(rounds).__name__}"
        assert len(rounds) == n.bit_length() - 1, f"{where}: expected {n.bit_length() - 1} rounds, got {len(rounds)}"
        # Every rank starts with its own bit: after a correct schedule, every rank holds all the bits.
        values = [1 << r for r in range(n)]
        for j, partners in enumerate(rounds):
            assert list(partners) and len(partners) == n, f"{where}: round {j} must give {n} partners, got {partners}"
            for r, p in enumerate(partners):
                assert isinstance(p, int) and 0 <= p < n and p != r, f"{where}: round {j}, rank {r}: bad partner {p!r}"
                assert partners[p] == r, (
                    f"{where}: round {j}: rank {r} sends to {p}, but {p} exchanges with {partners[p]}; partners must pair up"
                )
            values = [values[r] + values[partners[r]] for r in range(n)]
        assert values == [2**n - 1] * n, (
            f"{where}: after all rounds the ranks hold {values}, not the sum {2**n - 1}: some contributions "
            "were added twice or never (in each round, pair ranks whose sums cover disjoint sets of ranks)"
        )
    for n in (3, 6, 12):
        try:
            candidate(n)
        except ValueError:
            continue
        raise AssertionError(f"recursive_doubling_partners({n}) should raise ValueError: {n} is not a power of two")


def shard_indices(
    dataset_len: int,
    num_replicas: int,
    rank: int,
    *,
    shuffle: bool = True,
    seed: int = 0,
    epoch: int = 0,
    drop_last: bool = False,
) -> list[int]:
    """Challenge solution: the indices ``DistributedSampler`` gives ``rank`` in ``epoch``, from scratch.

    Examples:
        >>> shard_indices(5, 2, 1, shuffle=False)
        [1, 3, 0]
    """
    _check_int("dataset_len", dataset_len, minimum=0)
    _check_rank(rank, num_replicas)
    if shuffle:
        # The same generator, seeded alike, on every rank: all ranks agree on one order of the epoch.
        generator = torch.Generator().manual_seed(seed + epoch)
        indices = torch.randperm(dataset_len, generator=generator).tolist()
    else:
        indices = list(range(dataset_len))
    if drop_last and dataset_len % num_replicas:
        num_samples = math.ceil((dataset_len - num_replicas) / num_replicas)
    else:
        num_samples = math.ceil(dataset_len / num_replicas)
    total = num_samples * num_replicas
    if drop_last:
        indices = indices[:total]
    elif indices:
        # Pad by repeating the order from its start, as often as needed (a tiny data set, many ranks).
        indices = (indices * math.ceil(total / len(indices)))[:total]
    return indices[rank:total:num_replicas]


def check_shard_indices(candidate: Callable[..., list[int]]) -> None:
    """Raise ``AssertionError`` with a hint if ``candidate`` disagrees with ``DistributedSampler``.

    Examples:
        >>> check_shard_indices(shard_indices)
    """
    from torch.utils.data.distributed import DistributedSampler

    for n, replicas in ((10, 3), (12, 4), (7, 2), (2, 5), (1, 3), (9, 1)):
        for shuffle in (False, True):
            for drop_last in (False, True):
                for seed, epoch in ((0, 0), (3, 2)):
                    for rank in range(replicas):
                        sampler = DistributedSampler(
                            range(n), num_replicas=replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last
                        )
                        sampler.set_epoch(epoch)
                        expected = list(sampler)
                        got = candidate(
                            n, replicas, rank, shuffle=shuffle, seed=seed, epoch=epoch, drop_last=drop_last
                        )
                        where = (
                            f"shard_indices({n}, {replicas}, {rank}, shuffle={shuffle}, seed={seed}, epoch={epoch}, "
                            f"drop_last={drop_last})"
                        )
                        assert list(got) == expected, (
                            f"{where} = {list(got)}, expected {expected}: shuffle with seed + epoch, pad by "
                            "repeating from the start (or cut with drop_last), then take every num_replicas-th index"
                        )


# ----------------------------------------------------------------------------------------------------
# Argument checks, kept at the foot of the module so the ideas above read first. Every message names the
# argument, the value it got and what was expected.


def _check_int(name: str, value: object, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r} of type {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be an int of at least {minimum}, got {value}")


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 < value < math.inf):
        raise ValueError(f"{name} must be a positive finite number of seconds, got {value!r}")


def _check_rank(rank: object, world_size: object) -> None:
    _check_int("world_size", world_size, minimum=1)
    if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < world_size:  # type: ignore[operator]
        raise ValueError(f"rank must be an int with 0 <= rank < world_size={world_size}, got {rank!r}")


def _check_same_shapes(tensors: Sequence[Tensor]) -> None:
    if len(tensors) == 0 or not all(isinstance(t, Tensor) for t in tensors):
        raise ValueError(f"tensors must be a non-empty sequence of tensors, one per rank, got {tensors!r}")
    shapes = [tuple(t.shape) for t in tensors]
    if len(set(shapes)) != 1:
        raise ValueError(f"tensors must all have one shape, got shapes {shapes}")


def _check_ring_arguments(tensor: object, op: object) -> None:
    if not isinstance(tensor, Tensor):
        raise TypeError(f"tensor must be a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.is_contiguous():
        raise TypeError(f"tensor must be contiguous (it is reduced in place through a view), got strides {tensor.stride()}")
    if op not in _COMBINE:
        raise ValueError(f"op must be dist.ReduceOp.SUM, PRODUCT, MIN or MAX, got {op!r}")


if __name__ == "__main__":
    raise SystemExit(main())
