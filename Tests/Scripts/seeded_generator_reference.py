#!/usr/bin/env python3
"""Known answers for BertKit's SeededGenerator, from an independent implementation of the published
algorithms: SplitMix64 (Steele, Lea, Flood 2014) to seed xoshiro256** (Blackman & Vigna 2018),
Lemire's nearly divisionless bounded integers (arXiv:1805.10941), Fisher-Yates from the front.
Prints the values that Tests/PretrainingDataTests/RandomTests.swift pins.

    python3 Tests/Scripts/seeded_generator_reference.py
"""
M = (1 << 64) - 1


def splitmix64(state):
    while True:
        state = (state + 0x9E3779B97F4A7C15) & M
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
        yield z ^ (z >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M


class Xoshiro256ss:
    def __init__(self, seed):
        sm = splitmix64(seed)
        self.s = [next(sm) for _ in range(4)]

    def next(self):
        s = self.s
        result = (rotl((s[1] * 5) & M, 7) * 9) & M
        t = (s[1] << 17) & M
        s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]; s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def below(self, bound):
        m = self.next() * bound
        low, high = m & M, m >> 64
        if low < bound:
            threshold = ((1 << 64) - bound) % bound
            while low < threshold:
                m = self.next() * bound
                low, high = m & M, m >> 64
        return high

    def int_in(self, lo, hi):
        return lo + self.below(hi - lo + 1)

    def shuffle(self, a):
        i, remaining = 0, len(a)
        while remaining > 1:
            j = i + self.below(remaining)
            remaining -= 1
            a[i], a[j] = a[j], a[i]
            i += 1


g = Xoshiro256ss(42)
print("next, seed 42:", [g.next() for _ in range(3)])
g = Xoshiro256ss(7)
print("int(in: 1...6), seed 7:", [g.int_in(1, 6) for _ in range(12)])
print("then int(in: -5...1_000_000_007):", [g.int_in(-5, 1_000_000_007) for _ in range(4)])
g = Xoshiro256ss(2024)
a = list(range(10))
g.shuffle(a)
print("shuffle 0..<10, seed 2024:", a)
print("then below(3):", g.below(3))
g = Xoshiro256ss(9)
print("below(2^63 + 1) (about half the draws rejected), seed 9:", [g.below((1 << 63) + 1) for _ in range(4)])
