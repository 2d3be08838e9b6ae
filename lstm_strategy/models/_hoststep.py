"""One streaming LSTM step on the host, compiled with Numba when it is installed.

A batch-1 step is all latency: NumPy spends more time dispatching its dozen small calls
than doing the arithmetic (26-49 us a step at hidden 64 x 2, against a FLOP floor of
2-2.5 us). This is the same cell as nn.LSTM (gates i, f, g, o), fused with the input
scaling, the finite check and the head, in one call with no allocation. The gate
products run across gates (gates += W[k] * z[k], four inputs a pass), a loop that
vectorises with every gate's sum in one fixed order (no reassociating fast-math flag:
only fused multiply-adds), so a step gives the same bits every run on a machine.
"""

from __future__ import annotations

import math

import numpy as np

try:
    from numba import njit

    COMPILED = True
except ImportError:  # pragma: no cover - the NumPy step in sequence.py runs instead
    COMPILED = False

    def njit(*args, **kwargs):
        return (lambda fn: fn) if not args or not callable(args[0]) else args[0]


@njit(cache=True, error_model="numpy", fastmath={"contract"}, nogil=True, inline="always")
def _gates(w, z, width, gates):
    """gates = z[:width] @ w (w [width, 4 hidden]), four inputs a pass: a quarter of the
    loads and stores of `gates`, and a loop over gates that vectorises."""
    n = gates.shape[0]
    for r in range(n):
        gates[r] = 0.0
    k = 0
    while k + 4 <= width:
        a, b, c, d = z[k], z[k + 1], z[k + 2], z[k + 3]
        for r in range(n):
            gates[r] += (w[k, r] * a + w[k + 1, r] * b) + (w[k + 2, r] * c + w[k + 3, r] * d)
        k += 4
    while k < width:
        a = z[k]
        for r in range(n):
            gates[r] += w[k, r] * a
        k += 1


@njit(cache=True, error_model="numpy", inline="always")
def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


@njit(cache=True, error_model="numpy", inline="always")
def _tanh(x):
    # through exp: libm's tanh cost 17 ns here against 7 ns for this (within 1e-16)
    return 2.0 / (1.0 + math.exp(-2.0 * x)) - 1.0


@njit(cache=True, error_model="numpy", fastmath={"contract"}, nogil=True)
def lstm_step(mean, std, w0, wr, bias, head_w, head_b, target_std, direction, z, gates,
              state, row):
    """Advance `state` [2 (h, c), layers, hidden] by the raw feature `row` and return the
    forecast; NaN, with the state untouched, when the row has a non-finite value. (`row`
    comes last, so a functools.partial of the rest is the whole per-bar call.)

    w0 [n_in + hidden, 4 hidden] and wr [layers - 1, 2 hidden, 4 hidden] are the layers'
    input-and-recurrent weights, transposed; bias [layers, 4 hidden] the summed biases;
    z and gates are scratch of n_in + hidden (at least 2 hidden) and 4 hidden values."""
    n_in = row.shape[0]
    for k in range(n_in):
        if not math.isfinite(row[k]):
            return math.nan
    layers, hidden = state.shape[1], state.shape[2]
    for k in range(n_in):
        z[k] = (row[k] - mean[k]) / std[k]
    width = n_in
    for layer in range(layers):
        for j in range(hidden):
            z[width + j] = state[0, layer, j]
        _gates(w0 if layer == 0 else wr[layer - 1], z, width + hidden, gates)
        for j in range(hidden):
            i = _sigmoid(gates[j] + bias[layer, j])
            f = _sigmoid(gates[hidden + j] + bias[layer, hidden + j])
            g = _tanh(gates[2 * hidden + j] + bias[layer, 2 * hidden + j])
            o = _sigmoid(gates[3 * hidden + j] + bias[layer, 3 * hidden + j])
            c = f * state[1, layer, j] + i * g
            state[1, layer, j] = c
            h = o * _tanh(c)
            state[0, layer, j] = h
            z[j] = h
        width = hidden
    out = head_b
    for j in range(hidden):
        out += head_w[j] * z[j]
    if direction:
        return _sigmoid(out)
    return out * target_std


def empty_wr(hidden: int) -> np.ndarray:
    """The recurrent-layer weights of a one-layer model: none, in the kernel's shape."""
    return np.zeros((0, 2 * hidden, 4 * hidden))


def warm_up() -> None:
    """Compile the step (or load it from Numba's disk cache): setup does it ahead of time."""
    hidden, n_in = 2, 3
    lstm_step(np.zeros(n_in), np.ones(n_in), np.zeros((n_in + hidden, 4 * hidden)),
              empty_wr(hidden), np.zeros((1, 4 * hidden)), np.zeros(hidden), 0.0, 1.0, False,
              np.zeros(n_in + hidden), np.zeros(4 * hidden), np.zeros((2, 1, hidden)),
              np.zeros(n_in))
