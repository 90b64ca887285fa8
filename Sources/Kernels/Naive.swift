/// Naive reference kernels: plain loops over arrays, generic over the scalar type so that tests can
/// run them in Double (against finite differences) and compare the fast Float kernels with them.
/// Each sits beside its fast kernel (`extension Naive` in the same file) with the same argument names
/// and the same accumulation contract (backward passes `+=` into gradients).
public enum Naive {}
