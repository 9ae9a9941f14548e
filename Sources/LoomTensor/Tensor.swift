/// A dense, row-major (C order) n-dimensional array.
///
/// Storage is a Swift array, so copies are copy-on-write: reshaping or passing a
/// tensor along never copies its elements. The initializers are `@inlinable`, so that other
/// modules specialize them for `Float`: unspecialized, filling a tensor copied element by
/// element through the generic value witness (11 % of a transformer's time).
public struct Tensor<Element: Sendable>: Sendable {
    /// The extent of each axis.
    public var shape: [Int]
    /// The elements in C order; `storage.count == shape.product`.
    public var storage: [Element]

    /// Creates a tensor from a shape and its elements in C order.
    @inlinable public init(shape: [Int], storage: [Element]) {
        precondition(
            shape.elementCount == storage.count,
            "shape \(shape) holds \(shape.elementCount) elements, storage has \(storage.count)")
        self.shape = shape
        self.storage = storage
    }

    /// Creates a tensor of the given shape filled with one value.
    @inlinable public init(shape: [Int], repeating value: Element) {
        self.shape = shape
        self.storage = Array(repeating: value, count: shape.elementCount)
    }

    /// Creates a tensor whose elements are written by `body` into uninitialized memory.
    ///
    /// `body` must initialize every element of the buffer it is given.
    @inlinable public init(shape: [Int], unsafeUninitialized body: (UnsafeMutableBufferPointer<Element>) throws -> Void) rethrows {
        let count = shape.elementCount
        self.shape = shape
        self.storage = try Array(unsafeUninitializedCapacity: count) { buffer, initialized in
            try body(buffer)
            initialized = count
        }
    }

    /// The number of elements.
    @inlinable public var count: Int { storage.count }

    /// The number of axes.
    @inlinable public var rank: Int { shape.count }

    /// The same elements under another shape with the same element count.
    @inlinable public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, storage: storage)
    }
}

extension Tensor: Equatable where Element: Equatable {}

extension Tensor {
    /// The rows `rows` of this tensor along axis 0, in that order.
    @inlinable public func gatherRows(_ rows: [Int]) -> Tensor {
        let row = Array(shape.dropFirst()).elementCount
        return Tensor(shape: [rows.count] + Array(shape.dropFirst())) { out in
            storage.withUnsafeBufferPointer { src in
                for (i, r) in rows.enumerated() {
                    (out.baseAddress! + i * row).initialize(from: src.baseAddress! + r * row, count: row)
                }
            }
        }
    }
}

extension Array where Element == Int {
    /// The product of the extents: the number of elements of a tensor of this shape.
    @inlinable public var elementCount: Int { reduce(1, *) }

    /// The product of the extents, or nil if one is negative or the product overflows or passes
    /// `limit`: for shapes read from a file or computed by a model, before anything is allocated.
    public func checkedElementCount(limit: Int = Swift.Array<Int>.maxElements) -> Int? {
        var n = 1
        for d in self {
            guard d >= 0 else { return nil }
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            guard !overflow, p <= limit else { return nil }
            n = p
        }
        return n
    }

    /// The most elements a tensor from a file or a model may hold: 2^34 (64 GiB of float32).
    public static var maxElements: Int { 1 << 34 }

    /// Row-major strides, in elements, for a tensor of this shape.
    public var rowMajorStrides: [Int] {
        var strides = [Int](repeating: 1, count: count)
        var s = 1
        for axis in stride(from: count - 1, through: 0, by: -1) {
            strides[axis] = s
            s *= self[axis]
        }
        return strides
    }
}
