/// A value handed to concurrent workers that touch disjoint parts of what it holds or points to. The
/// one unchecked-Sendable wrapper of the package: the caller guarantees the exclusive access.
public struct UncheckedSendable<T>: @unchecked Sendable {
    public let value: T
    @inlinable public init(_ value: T) { self.value = value }
}
