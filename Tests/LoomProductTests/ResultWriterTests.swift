import LoomFunctions
import LoomProduct
import LoomTensor
import LoomTestSupport
import Testing

@Suite("result files and the out folder")
struct ResultWriterTests {
    @Test("nested leaves are named tangermeme-style and filled in any order")
    func nested() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let writer = ResultWriter(directory: dir.path, axes: [2, 2])
        func tree(_ first: Int, _ count: Int) -> OutputTree {
            let a = Tensor<Float>(shape: [count, 3], storage: (0..<count * 3).map { Float(first * 3 + $0) })
            let b = Tensor<Float>(shape: [count], storage: (0..<count).map { -Float(first + $0) })
            return .list([.list([.leaf(a), .leaf(b)]), .list([.leaf(a), .leaf(b)])])
        }
        try writer.write(tree(2, 2), at: 2)
        try writer.write(tree(0, 2), at: 0)
        let outputs = try writer.finish()
        #expect(outputs.map(\.file) == ["y_0_0.npy", "y_0_1.npy", "y_1_0.npy", "y_1_1.npy"])
        #expect(outputs.map(\.index) == [[0, 0], [0, 1], [1, 0], [1, 1]])
        #expect(outputs[0].shape == [2, 2, 3])
        #expect(outputs[1].shape == [2, 2])
        #expect(try NpyArray.read(path: dir.file("y_0_0.npy")).floatTensor().storage == (0..<12).map(Float.init))
        #expect(try NpyArray.read(path: dir.file("y_1_1.npy")).floatTensor().storage == [0, -1, -2, -3])
    }

    @Test("a shard's consecutive batches written together land as if written one by one; a gap or a changed shape is refused")
    func consecutive() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        func tree(_ first: Int, _ count: Int) -> OutputTree {
            let a = Tensor<Float>(shape: [count, 2], storage: (0..<count * 2).map { Float(first * 2 + $0) })
            let b = Tensor<Float>(shape: [count], storage: (0..<count).map { -Float(first + $0) })
            return .list([.leaf(a), .leaf(b)])
        }
        let writer = ResultWriter(directory: dir.path, axes: [7])
        try writer.write(consecutive: [(0..<3, tree(0, 3)), (3..<6, tree(3, 3)), (6..<7, tree(6, 1))])
        let outputs = try writer.finish()
        #expect(outputs.map(\.shape) == [[7, 2], [7]])
        #expect(try NpyArray.read(path: dir.file("y_0.npy")).floatTensor().storage == (0..<14).map(Float.init))
        #expect(try NpyArray.read(path: dir.file("y_1.npy")).floatTensor().storage == (0..<7).map { -Float($0) })
        let other = ResultWriter(directory: dir.path, axes: [7])
        #expect(throws: IndexSpaceError.self) { try other.write(consecutive: [(0..<3, tree(0, 3)), (4..<7, tree(4, 3))]) }
        #expect(throws: IndexSpaceError.self) {
            try other.write(consecutive: [
                (0..<3, tree(0, 3)), (3..<5, .list([.leaf(Tensor(shape: [2, 3], repeating: 1)), .leaf(Tensor(shape: [2], repeating: 1))]))
            ])
        }
    }

    @Test("a batch whose outputs change shape is an error, not a silent mix")
    func mismatch() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let writer = ResultWriter(directory: dir.path, axes: [4])
        try writer.write(.leaf(Tensor(shape: [2, 3], repeating: 1)), at: 0)
        #expect(throws: IndexSpaceError.self) { try writer.write(.leaf(Tensor(shape: [2, 4], repeating: 1)), at: 2) }
        #expect(throws: IndexSpaceError.self) { try writer.write(.list([.leaf(Tensor(shape: [2, 3], repeating: 1))]), at: 2) }
    }
}
