"""Fixed-size row blocks for every matrix product of serving (the model step and the scorers).

Serving runs every matrix product on blocks of exactly ``SERVING_BLOCK`` rows (the batch zero-padded
to a multiple of it), so each row always goes through the same kernels with the same shapes: MKL
picks its kernel by the row count (here products of 1-3 rows round differently from those of 4 or
more), and a row's bits must not depend on the micro-batch it came in. 32 rows also keep the
element-wise ops of a block on whole vectors (32 x hidden floats), so no row falls into a scalar tail.

Cost in µs per event of step + top_k(20) at batches of 1 / 16 / 64 / 256, one thread, unpadded ->
padded (`python -m bench.serving_step`, best of 4 runs each on the shared 2-core VM, +-20%):
  2,933 items:  193 / 32 / 26 / 26       ->  620 / 53 / 28 / 27
  50,000 items: 2270 / 390 / 235 / 290   ->  8700 / 540 / 286 / 294
Blocks of 16 rows cost less at batch 1 and 16 (50,000 items: 5,800 and 400) but more from 64 rows
(390 and 370): each block reads the whole item matrix.
"""

from torch import Tensor

SERVING_BLOCK = 32


def padded(rows: Tensor) -> Tensor:
    """``rows`` in a fresh buffer, zero-padded to a multiple of ``SERVING_BLOCK`` rows: every block has
    the same strides and the same 64-byte alignment."""
    out = rows.new_zeros(-(-len(rows) // SERVING_BLOCK) * SERVING_BLOCK, *rows.shape[1:])
    out[: len(rows)] = rows
    return out


def blocks(n_rows: int) -> list[slice]:
    """The blocks of ``SERVING_BLOCK`` rows covering ``n_rows`` rows (the last one into the padding)."""
    return [slice(start, start + SERVING_BLOCK) for start in range(0, n_rows, SERVING_BLOCK)]
