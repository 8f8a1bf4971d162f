"""Fit the coefficients of the engine's float32 tanh: tanh(x) ≈ x·P(x²) / Q(x²) on |x| ≤ CLAMP.

P has degree 6 (odd numerator up to x¹³), Q degree 3 (even denominator up to x⁶), Q(0) = P(0) so
that the approximation is exact to first order at 0. The fit minimises the largest relative error
on a dense grid by Lawson's iteratively reweighted least squares on the linearised residual
x·P(x²) − tanh(x)·Q(x²). CLAMP is where tanh is within 2⁻²² of 1; beyond it the engine returns the
value at CLAMP. Prints the coefficients for ``rnnkit/engine/activations.py`` and the errors of the
float32 evaluation (Horner's rule, as the engine does it) over every float32 in [−CLAMP, CLAMP]
that a stride samples.

    python scripts/fit_tanh.py
"""

from __future__ import annotations

import numpy as np

CLAMP = float(np.float32(np.arctanh(1 - 2.0 ** -22)))
NUM, DEN = 7, 4                          # coefficients of P (x¹..x¹³) and Q (x⁰..x⁶)


def design(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The linearised residual x·P − tanh(x)·Q in the unknowns a₁..a₆, b₁..b₃ (a₀ = b₀ = 1), each
    divided by tanh(x) so that it measures relative error. Powers of u = (x / CLAMP)² instead of
    x² keep the columns of comparable size."""
    u = (x / CLAMP) ** 2
    f = np.tanh(x)
    num = [x * u ** i / f for i in range(1, NUM)]
    den = [-u ** j for j in range(1, DEN)]
    return np.stack(num + den, axis=1), 1.0 - x / f


def fit(iterations: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients of P and Q in powers of x² (a₀ = b₀ = 1)."""
    x = np.linspace(1e-3, CLAMP, 40000)
    A, rhs = design(x)
    weights = np.full_like(x, 1.0 / x.size)
    for _ in range(iterations):
        w = np.sqrt(weights)
        coef, *_ = np.linalg.lstsq(A * w[:, None], rhs * w, rcond=None)
        a, b = to_monomials(coef)
        p, q = evaluate(a, b, x)
        err = np.abs(p / q - np.tanh(x)) / np.tanh(x)
        weights *= (err / err.max()) + 1e-3                    # Lawson: weight up where the error peaks
        weights /= weights.sum()
    return a, b


def to_monomials(coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scale = CLAMP ** -2.0 * np.ones(1)
    a = np.concatenate([[1.0], coef[:NUM - 1] * scale ** np.arange(1, NUM)])
    b = np.concatenate([[1.0], coef[NUM - 1:] * scale ** np.arange(1, DEN)])
    return a, b


def evaluate(a: np.ndarray, b: np.ndarray, x: np.ndarray):
    x2 = x * x
    p = np.zeros_like(x)
    for c in a[::-1]:
        p = p * x2 + c
    q = np.zeros_like(x)
    for c in b[::-1]:
        q = q * x2 + c
    return x * p, q


def main() -> None:
    a, b = fit()
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    bits = np.arange(0, np.float32(CLAMP).view(np.int32), 97, dtype=np.int32)
    x = bits.view(np.float32)
    p, q = evaluate(a32, b32, x)                                 # float32 arithmetic throughout
    approx = (p / q).astype(np.float64)
    exact = np.tanh(x.astype(np.float64))
    print(f"CLAMP = {np.float32(CLAMP)!r}")
    print("P:", ", ".join(f"{c!r}" for c in a32.tolist()))
    print("Q:", ", ".join(f"{c!r}" for c in b32.tolist()))
    print(f"max abs error {np.max(np.abs(approx - exact)):.3g}, max rel error "
          f"{np.max(np.abs(approx - exact) / np.maximum(exact, 1e-30)):.3g}, beyond the clamp "
          f"{1 - np.tanh(np.float64(np.float32(CLAMP))):.3g}, over {x.size} float32 values")


if __name__ == "__main__":
    main()
