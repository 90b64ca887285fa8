/*
 * libfakeintel.so: an LD_PRELOAD shim for the PyTorch peers of `make bench` (torch_peer_env.py).
 *
 * Intel MKL picks its code path from the CPU vendor before the CPU's features: on a non-Intel x86 CPU
 * it takes a generic AVX2 path even where the CPU has AVX-512, and torch's fp32 matrix products run at
 * about half the speed they could. MKL asks two internal functions whether the CPU is Intel's; these
 * definitions answer yes, so MKL then dispatches on the features the CPU reports (AVX-512 where there
 * is AVX-512). bench.py preloads it only when /proc/cpuinfo lists avx512f.
 *
 * Used when ../shared/bench/fakeintel.c (the same two functions) is absent. Build:
 *     cc -shared -fPIC -O2 -o libfakeintel.so fakeintel.c
 */
int mkl_serv_intel_cpu_true(void) { return 1; }
int mkl_serv_intel_cpu(void) { return 1; }
