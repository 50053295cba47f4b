"""A keyed bijection on [0, N): epoch e's shuffled order without materialising it.

As Grain's and TensorFlow's ``index_shuffle``: a balanced Feistel network on the smallest
even number of bits 2h with 2^(2h) >= N (the two halves are h bits each), 6 rounds, whose
round function is multiplicative hashing: the top h bits of (half XOR round key) times an
odd 64-bit constant (3 numpy calls, since per-call overhead is the cost at batch sizes).
Positions that land at or past N walk the cycle (apply the network again) until they come
back below N. The network is a
permutation of [0, 2^(2h)), so the walk is a permutation of [0, N); as 2^(2h) < 4N, a
position walks fewer than 4 steps on average. The round keys come from numpy's
``SeedSequence([seed, epoch])``: the order is a pure function of (seed, epoch, N), and any
position's image costs O(rounds), whatever N (up to 2^64).
"""

from __future__ import annotations

import numpy as np

ROUNDS = 6
_MUL = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplication by it is a bijection mod 2^64


class Bijection:
    """Position -> image of one shuffled epoch: ``Bijection(n, seed, epoch)(positions)``."""

    def __init__(self, n: int, seed: int, epoch: int):
        if n < 1:
            raise ValueError(f"a bijection needs at least one element, got n = {n}")
        self.n = n
        self.half = max(1, (int(n - 1).bit_length() + 1) // 2)
        self.mask = np.uint64((1 << self.half) - 1)
        sequence = np.random.SeedSequence([seed, epoch])
        self.keys = sequence.generate_state(ROUNDS, np.uint64)

    def _network(self, x: np.ndarray) -> np.ndarray:
        shift, top = np.uint64(self.half), np.uint64(64 - self.half)
        left, right = x >> shift, x & self.mask
        for key in self.keys:  # round function: the top h bits of (right XOR key) * odd
            mixed = right ^ key
            mixed *= _MUL
            mixed >>= top
            left, right = right, left ^ mixed
        return (left << shift) | right

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        """The images at ``positions`` (integers in [0, n)), as int64."""
        x = np.asarray(positions, np.uint64)
        if x.size and int(x.max()) >= self.n:
            raise ValueError(f"positions must be in [0, {self.n}); got {int(x.max())}")
        out = self._network(x)
        walking = np.flatnonzero(out >= np.uint64(self.n))
        while walking.size:
            out[walking] = self._network(out[walking])
            walking = walking[out[walking] >= np.uint64(self.n)]
        return out.astype(np.int64)
