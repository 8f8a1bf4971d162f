"""Which vector instructions the compiled code targets, and the tile shapes that fit them.

Numba compiles for the host CPU (or for ``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` when the user
sets them), so the engine asks the same source what the code will run on: with AVX-512 a vector
holds 512 bits (16 float32, 8 float64) and there are 32 vector registers; with AVX2, 256 bits and
16 registers; otherwise 128 bits. The micro-kernel keeps an MR × NV tile of accumulators in
registers, plus NV vectors of the weight panel and one broadcast value, so MR·NV + NV + 1 must fit
in the register file — the shapes below are the largest that do, measured on this project's
benchmark machine (see docs/engine.md).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np


@functools.lru_cache(maxsize=None)
def _itemsize(dtype) -> int:
    """Bytes per element of a NumPy dtype (or scalar type) or of a Numba float type."""
    try:
        return np.dtype(dtype).itemsize
    except TypeError:
        return np.dtype(str(dtype)).itemsize


@dataclass(frozen=True)
class Isa:
    name: str                  # "avx512", "avx2" or "sse": what the vector registers are
    vector_bits: int           # width of one vector register
    registers: int             # vector registers the tiles may use

    def lanes(self, dtype) -> int:
        """Elements of ``dtype`` (a NumPy dtype or a Numba float type) in one vector register."""
        return self.vector_bits // (8 * _itemsize(dtype))


def _features() -> set[str]:
    import llvmlite.binding as llvm
    from numba.core import config
    if config.CPU_FEATURES is not None:                  # the user pinned the compilation target
        text = config.CPU_FEATURES
    elif config.CPU_NAME is not None:                    # a named CPU without features: assume the minimum
        text = ""
    else:
        text = llvm.get_host_cpu_features().flatten()
    return {f[1:] for f in text.split(",") if f.startswith("+")}


@functools.cache
def host_isa() -> Isa:
    """The vector ISA the compiled code may use (read once)."""
    features = _features()
    if {"avx512f", "avx512dq", "avx512bw", "avx512vl"} <= features:
        return Isa("avx512", 512, 32)
    if {"avx2", "fma"} <= features:
        return Isa("avx2", 256, 16)
    return Isa("sse", 128, 16)


@functools.cache
def dot_bits() -> int | None:
    """Width of the vectors ``vpdpbusd`` (u8 × s8 dot products of 4 into int32) may use, or None.

    AVX512_VNNI gives it on 512-bit vectors (Intel from Cascade Lake, AMD from Zen 4); AVX-VNNI,
    the same instruction VEX-encoded, on 256-bit vectors (Intel from Alder Lake, AMD Zen 5) for a
    machine whose widest vectors are AVX2's. Read from the same features the compiler targets.
    """
    features = _features()
    isa = host_isa()
    if isa.name == "avx512" and "avx512vnni" in features:
        return 512
    if isa.name == "avx2" and "avxvnni" in features:
        return 256
    return None


@functools.cache
def bf16_units() -> frozenset[str]:
    """The bfloat16 matrix units the compiled code may use (read once): "avx512bf16" for
    AVX512_BF16's dot products (``vdpbf16ps``: Cooper Lake, Sapphire Rapids, AMD Zen 4 and 5),
    "amx" for AMX's tiles (``tdpbf16ps``: Intel from Sapphire Rapids). Empty where neither."""
    features = _features()
    units = set()
    if host_isa().name == "avx512" and "avx512bf16" in features:
        units.add("avx512bf16")
    if {"amx-tile", "amx-bf16"} <= features:
        units.add("amx")
    return frozenset(units)


@dataclass(frozen=True)
class TileShape:
    """An MR × (NV vectors) block of the output, kept in registers over the whole K loop."""

    mr: int                    # rows of A (batch rows) per tile
    nv: int                    # vectors of the packed panel per row

    def width(self, dtype) -> int:
        """NR: columns of the packed panel, NV vectors of ``dtype`` lanes."""
        return self.nv * host_isa().lanes(dtype)


def tile_rows(nv: int, isa: Isa | None = None) -> int:
    """MR for a tile NV vectors wide: as many rows as the registers allow, at most 8.

    A tile of MR × NV accumulators needs MR·NV + NV + 1 registers (the accumulators, one row of the
    panel and one broadcast value of A). With AVX-512's 32: 8 × 2, 8 × 3, 6 × 4. Measured on one
    core, float32, (32×256)·(256×1024) with the panel in cache: 8×2 224 GFLOP/s, 12×2 207,
    4×4 187, 6×4 182; at (8×64)·(64×256): 8×2 210, 4×4 198, 6×4 139.
    """
    registers = (isa or host_isa()).registers
    return max(1, min(8, (registers - nv - 1) // nv))


def tile_shape(nv: int) -> TileShape:
    return TileShape(tile_rows(nv), nv)
