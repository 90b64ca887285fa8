// SHA-256 block compression with the x86 SHA extensions (SHA-NI), for PretrainingData's SHA256.
// The portable implementation is in Swift (Sources/PretrainingData/SHA256.swift); this shim only
// exists because Swift cannot emit the sha256rnds2/msg1/msg2 instructions.
#ifndef BERTKIT_SHA256_H
#define BERTKIT_SHA256_H

#include <stddef.h>
#include <stdint.h>

/// The 64 round constants of FIPS 180-4 §4.2.2 (shared with the portable Swift code).
const uint32_t *bertkit_sha256_round_constants(void);

/// 1 when this CPU has the SHA extensions (and SSSE3/SSE4.1) and this build can use them, else 0.
int bertkit_sha256_hardware_available(void);

/// Compresses `blocks` 64-byte blocks at `data` into `state` (8 words, FIPS 180-4 order a..h).
/// Only call when `bertkit_sha256_hardware_available()` returned 1.
void bertkit_sha256_blocks(uint32_t state[8], const uint8_t *data, size_t blocks);

#endif
