"""Deterministic, resumable batch iteration: :class:`EpochBatchSampler`, :class:`TrainLoader`, :class:`EvalLoader`.

Design (exact resume and DDP by construction):

* the order of epoch ``e`` is ``torch.randperm(N, generator=seeded with mix(seed, e))`` -- identical on
  every rank and every run, whatever happened before;
* global batch ``b`` of the epoch covers ``perm[b·B:(b+1)·B]``; with ``W`` ranks, rank ``r`` serves the
  global batches ``b = step·W + r`` for ``step < floor(N / (B·W))`` (disjoint, equal shares; the last
  partial round is dropped, like the original's ``floor(N / B)`` steps);
* each batch carries its own augmentation seed ``mix(seed, e, b)`` (an int64 tensor), so its random
  transform does not depend on any RNG state that would have to be saved;
* the only state is (epoch, batches already served in it), saved by Lightning through
  :meth:`TrainLoader.state_dict` and restored with :meth:`TrainLoader.load_state_dict`.

Batches are ``(x, y, seed)``: ``x`` uint8 ``B×3×32×32``, ``y`` int64 ``B``, ``seed`` a 0-dim int64 tensor.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Iterator, NamedTuple, Optional

import torch
from torch.utils.data import DataLoader, Dataset

log = logging.getLogger("resattn.data")

_MASK64 = (1 << 64) - 1
_PERM_TAG = 0x7065726D  # "perm"
_AUG_TAG = 0x61756721  # "aug!"


def _splitmix64(z: int) -> int:
    z = (z + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def mix_seed(*parts: int) -> int:
    """Hash integers into a well-mixed non-negative 63-bit seed (SplitMix64 chain)."""
    h = 0
    for p in parts:
        h = _splitmix64(h ^ (int(p) & _MASK64))
    return h >> 1


def epoch_seed(seed: int, epoch: int) -> int:
    """Seed of epoch ``epoch``'s permutation."""
    return mix_seed(_PERM_TAG, seed, epoch)


def batch_seed(seed: int, epoch: int, batch_index: int) -> int:
    """Augmentation seed of global batch ``batch_index`` of epoch ``epoch``."""
    return mix_seed(_AUG_TAG, seed, epoch, batch_index)


class BatchRequest(NamedTuple):
    """One element of :class:`EpochBatchSampler`: the images of a batch and its augmentation seed."""

    indices: torch.Tensor
    seed: int


class EpochBatchSampler:
    """Yields one :class:`BatchRequest` per training step of the current epoch (see module docstring).

    ``set_epoch(e)`` selects the epoch (Lightning calls it on ``loader.sampler`` at every epoch start);
    ``start`` skips the first batches of this rank's share (used by mid-epoch resume).
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank} world_size={world_size}")
        self.n = int(n)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n // (self.batch_size * self.world_size)

    def permutation(self, epoch: Optional[int] = None) -> torch.Tensor:
        g = torch.Generator(device="cpu")
        g.manual_seed(epoch_seed(self.seed, self.epoch if epoch is None else epoch))
        return torch.randperm(self.n, generator=g)

    def global_batch(self, step: int) -> int:
        """Index, within the whole epoch, of this rank's ``step``-th batch."""
        return step * self.world_size + self.rank

    def __iter__(self) -> Iterator[BatchRequest]:
        epoch, bs = self.epoch, self.batch_size
        perm = self.permutation(epoch)
        for step in range(self.start, len(self)):
            b = self.global_batch(step)
            yield BatchRequest(perm[b * bs : (b + 1) * bs], batch_seed(self.seed, epoch, b))


class BatchDataset(Dataset):
    """Map-style dataset whose items are whole batches: ``ds[BatchRequest] -> (x, y, seed)``."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, req: BatchRequest) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = req.indices.to(self.x.device)
        return (
            self.x.index_select(0, idx),
            self.y.index_select(0, idx),
            torch.tensor(req.seed, dtype=torch.int64),
        )


class TrainLoader:
    """Resumable training iterable over :class:`EpochBatchSampler` (``len`` = steps per epoch).

    Backends: ``device_resident=True`` keeps ``x``/``y`` where they are (move them to the training
    device first) and slices batches there by index; otherwise a ``torch.utils.data.DataLoader``
    with ``batch_size=None`` draws whole batches from :class:`BatchDataset` (``num_workers``,
    ``pin_memory``, ``persistent_workers``).  Both yield identical batches.

    The epoch comes from ``self.sampler.epoch`` when iteration *starts* (``__iter__`` is lazy: nothing
    happens until the first ``next``), so Lightning's ``set_epoch`` call at the epoch start, which
    follows the ``iter()`` it makes in ``setup_data``, is honoured.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        seed: int,
        *,
        rank: int = 0,
        world_size: int = 1,
        device_resident: bool = False,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
    ) -> None:
        if len(x) != len(y):
            raise ValueError(f"x and y lengths differ: {len(x)} vs {len(y)}")
        self.sampler = EpochBatchSampler(len(x), batch_size, seed, rank, world_size)
        self.dataset = BatchDataset(x, y)
        self.device_resident = bool(device_resident)
        self._dataloader: Optional[DataLoader] = None
        if not self.device_resident:
            # Its own generator: iter(DataLoader) draws a base seed, which must not consume the global RNG
            # (a mid-epoch resume would otherwise shift every later dropout mask by one draw).
            generator = torch.Generator()
            generator.manual_seed(int(seed))
            self._dataloader = DataLoader(
                self.dataset,
                sampler=self.sampler,
                batch_size=None,
                generator=generator,
                num_workers=num_workers,
                pin_memory=pin_memory,
                persistent_workers=persistent_workers and num_workers > 0,
            )
        self._epoch = 0  # epoch of the iteration in progress (or last started)
        self._served = 0  # batches of that epoch already yielded
        self._pending: Optional[tuple[int, int]] = None  # (epoch, served) from load_state_dict

    @property
    def batch_size(self) -> int:
        return self.sampler.batch_size

    def __len__(self) -> int:
        return len(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[Any]:
        epoch = self.sampler.epoch
        start = 0
        if self._pending is not None:
            p_epoch, p_served = self._pending
            self._pending = None
            if p_epoch == epoch and p_served < len(self):
                start = p_served
        self._epoch, self._served = epoch, start
        self.sampler.start = start
        batches = self._iter_resident() if self._dataloader is None else iter(self._dataloader)
        for batch in batches:
            self._served += 1
            yield batch

    def _iter_resident(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Same batches as the sampler's, sliced where ``x`` lives (permutation moved once per epoch)."""
        s, x, y = self.sampler, self.dataset.x, self.dataset.y
        epoch, bs = s.epoch, s.batch_size
        perm = s.permutation(epoch).to(x.device)
        for step in range(s.start, len(s)):
            b = s.global_batch(step)
            idx = perm[b * bs : (b + 1) * bs]
            yield x.index_select(0, idx), y.index_select(0, idx), torch.tensor(batch_seed(s.seed, epoch, b))

    def state_dict(self) -> dict[str, int]:
        """Position for an exact resume: the epoch and how many of its batches were already served."""
        if self._pending is not None:
            epoch, served = self._pending
        else:
            epoch, served = self._epoch, self._served
        return {
            "epoch": int(epoch),
            "batches_served": int(served),
            "steps_per_epoch": len(self),
            "batch_size": self.batch_size,
            "world_size": self.sampler.world_size,
            "seed": self.sampler.seed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at ``state`` (applies to the next iteration if it starts in the same epoch)."""
        saved = {k: state.get(k) for k in ("batch_size", "world_size", "seed")}
        current = {"batch_size": self.batch_size, "world_size": self.sampler.world_size, "seed": self.sampler.seed}
        changed = {k: (v, current[k]) for k, v in saved.items() if v is not None and v != current[k]}
        if changed:
            log.warning(
                "resuming a training loader saved with different settings %s (saved, now): the rest of "
                "the epoch follows the new settings from batch %d",
                changed,
                int(state["batches_served"]),
            )
        self._pending = (int(state["epoch"]), int(state["batches_served"]))
        self._epoch, self._served = self._pending


class EvalLoader:
    """This rank's shard of the images, in order, in contiguous batches of ``batch_size`` (last may be smaller).

    With ``world_size`` ranks the images are split into contiguous shards (:func:`shard_bounds`): every
    image is evaluated exactly once across ranks, with no padding duplicates (unlike ``DistributedSampler``);
    later shards may be one image shorter. Sum-reduced torchmetrics states then give, after their sync, the
    exact single-process value. Yields ``(x_uint8, y_int64)`` views of the stored tensors (no copies).
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, rank: int = 0, world_size: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank} world_size={world_size}")
        self.start, self.stop = shard_bounds(len(x), rank, world_size)
        self.x, self.y, self.batch_size = x[self.start : self.stop], y[self.start : self.stop], int(batch_size)

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(0, len(self.x), self.batch_size):
            yield self.x[i : i + self.batch_size], self.y[i : i + self.batch_size]


def shard_bounds(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """``[start, stop)`` of rank ``rank``'s contiguous shard of ``n`` items (sizes differ by at most one)."""
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)
