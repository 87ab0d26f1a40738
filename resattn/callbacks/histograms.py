"""Per-epoch weight histograms in TensorBoard (the original study logged them every epoch)."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger


def kernel_histograms(tensors: list[torch.Tensor], bins: int) -> list[dict[str, object]]:
    """TensorBoard histogram fields of each tensor: ``bins`` equal-width buckets from its min to its max.

    Computed with torch where the tensors live, with two host transfers in all (the per-tensor ranges,
    then every count and sum at once), instead of one numpy copy and ``np.histogram`` over TensorBoard's
    ~1,500 exponential default buckets per tensor.  Returns ``add_histogram_raw`` keyword arguments.
    """
    if not tensors:
        return []
    flat = [t.detach().reshape(-1).float() for t in tensors]
    ranges = torch.stack([torch.stack(torch.aminmax(f)) for f in flat]).cpu().tolist()
    # torch.histc has no deterministic CUDA kernel: under torch.use_deterministic_algorithms count on the CPU.
    host_counts = torch.are_deterministic_algorithms_enabled()
    rows = []
    for f, (lo, hi) in zip(flat, ranges):
        if hi > lo:
            src = f.cpu() if host_counts and f.is_cuda else f
            counts = torch.histc(src, bins=bins, min=lo, max=hi).to(f.device)
        else:  # constant tensor: everything in the last bucket
            counts = torch.zeros(bins, device=f.device)
            counts[-1] = f.numel()
        rows.append(torch.cat([counts, f.sum().view(1), f.square().sum().view(1)]))
    table = torch.stack(rows).double().cpu()
    out = []
    for f, (lo, hi), row in zip(flat, ranges, table):
        width = (hi - lo) / bins if hi > lo else 0.0
        limits = [lo + width * (i + 1) for i in range(bins)]
        limits[-1] = hi
        out.append(
            {
                "min": lo,
                "max": hi,
                "num": f.numel(),
                "sum": float(row[bins]),
                "sum_squares": float(row[bins + 1]),
                "bucket_limits": limits,
                "bucket_counts": row[:bins].tolist(),
            }
        )
    return out


class WeightHistograms(pl.Callback):
    """Adds a histogram of every weight kernel to each TensorBoard logger every ``every_n_epochs`` epochs.

    ``bins`` equal-width buckets between each kernel's min and max (30: the default of ``tf.summary.histogram``,
    which the original Keras TensorBoard callback used).
    """

    def __init__(self, every_n_epochs: int = 1, bins: int = 30) -> None:
        if bins < 1:
            raise ValueError(f"bins={bins} must be >= 1")
        self.every_n_epochs = every_n_epochs
        self.bins = bins

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.every_n_epochs < 1 or (trainer.current_epoch + 1) % self.every_n_epochs:
            return
        loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        if not loggers or trainer.global_rank != 0:
            return
        # kernels only; biases and BN affine parameters add little
        named = [(name, p) for name, p in pl_module.named_parameters() if p.dim() >= 2]
        with torch.no_grad():
            hists = kernel_histograms([p for _, p in named], self.bins)
        for (name, _), hist in zip(named, hists):
            for logger in loggers:
                logger.experiment.add_histogram_raw(f"weights/{name}", global_step=trainer.current_epoch, **hist)
