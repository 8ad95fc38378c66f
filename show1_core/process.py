"""Process-wide settings that applications make once, before any stage runs: arithmetic that gives
the same bytes in every process, and a CPU heap that is reused between denoising steps.

The library itself never calls these (they change the whole process); the CLI, every Ray actor,
the ComfyUI pack, the tests and the benchmarks do.
"""

from __future__ import annotations

import os

import torch

from .memory import glibc

# Intel MKL's conditional numerical reproducibility: MKL reads it when it starts (its first matrix
# product), so it is set before that; a value the user set wins.
REPRODUCIBLE_MKL = {"MKL_CBWR": "AUTO"}


def pin_cpu_arithmetic(threads: int | None = None) -> int:
    """Make the same job give the same bytes in every process of this machine; returns the thread
    count.

    PyTorch's CPU kernels (ATen, oneDNN) round the same way for a fixed thread count. Intel MKL,
    which computes the fp32 matrix products, does not by default: it picks the threads of each
    product itself (dynamic threading, which scales down to the physical cores) and, without CNR,
    may take code paths that depend on how its buffers and the operands fall in memory. Two
    processes that load other models beside a stage, or allocate in another order, then round one
    product differently, and random-weight models amplify that into other pixels. An explicit
    thread count turns MKL's dynamic threading off (`torch.set_num_threads`), and CNR mode pins its
    code paths. `threads` defaults to the count PyTorch chose for this machine.
    """
    for key, value in REPRODUCIBLE_MKL.items():
        os.environ.setdefault(key, value)
    count = threads or torch.get_num_threads()
    torch.set_num_threads(count)
    return count


def worker_environment(threads: int) -> dict[str, str]:
    """Environment of a worker process (a Ray actor) that must compute as this one does: MKL's CNR
    mode before MKL starts there, and this thread count for OpenMP and MKL."""
    return {**{k: os.environ.get(k, v) for k, v in REPRODUCIBLE_MKL.items()},
            "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def tune_cpu_allocator() -> bool:
    """Keep freed CPU buffers in the process heap instead of returning them to the kernel.

    glibc serves large allocations with mmap and unmaps them on free, so every denoising step pays
    page faults on fresh memory again (a tenth or more of the CPU time here). Disabling mmap for
    malloc and raising the trim threshold lets PyTorch's CPU allocations reuse the heap. Stages
    give the heap back when they end (`memory.empty_cache`). Returns False where glibc's mallopt is
    not available.
    """
    libc = glibc()
    if libc is None:
        return False
    m_trim_threshold, m_mmap_max = -1, -4
    return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 1 << 30))
