import LoomTensor
import LoomTestSupport
import Testing

/// Builds a `.npy` file by hand with a given version, descr and shape text.
func handNpy(version: UInt8, descr: String, fortran: Bool = false, shape: String, data: [UInt8]) -> [UInt8] {
    var header = "{'descr': '\(descr)', 'fortran_order': \(fortran ? "True" : "False"), 'shape': \(shape), }"
    let fixed = version == 1 ? 10 : 12
    while (fixed + header.utf8.count + 1) % 64 != 0 { header += " " }
    header += "\n"
    var out: [UInt8] = [0x93] + Array("NUMPY".utf8) + [version, 0]
    let n = header.utf8.count
    if version == 1 { out += [UInt8(n & 0xFF), UInt8(n >> 8)] } else { out += [UInt8(n & 0xFF), UInt8((n >> 8) & 0xFF), 0, 0] }
    return out + Array(header.utf8) + data
}

func floatBytes(_ values: [Float]) -> [UInt8] {
    values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
}

@Suite("npy files")
struct NpyTests {
    @Test("float32 round trip keeps shape and bits")
    func roundTrip() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let values: [Float] = [0, -1.5, .pi, 1e-30, -.infinity, 3.25e7]
        try writeNpy(dir.file("a.npy"), shape: [2, 3], values)
        let back = try NpyArray.read(path: dir.file("a.npy"))
        #expect(back.dtype == .float32)
        #expect(back.shape == [2, 3])
        #expect(back.floatTensor().storage.map(\.bitPattern) == values.map(\.bitPattern))
    }

    @Test("scalars and 1-D shapes round trip")
    func shapes() throws {
        for shape in [[Int](), [4], [1, 1, 1, 2]] {
            let t = Tensor<Float>(shape: shape, storage: (0..<shape.elementCount).map { Float($0) })
            let back = try NpyArray.parse(NpyArray.encode(t), path: "mem")
            #expect(back.shape == shape)
            #expect(back.floatTensor() == t)
        }
    }

    @Test("the header pads the data to a 64-byte boundary")
    func alignment() {
        #expect(NpyHeader.encode(dtype: .float32, shape: [5, 4, 10]).count % 64 == 0)
    }

    @Test("format versions 1, 2 and 3 are read", arguments: [UInt8(1), 2, 3])
    func versions(version: UInt8) throws {
        let bytes = handNpy(version: version, descr: "<f4", shape: "(2,)", data: floatBytes([1.5, -2]))
        let a = try NpyArray.parse(bytes, path: "v.npy")
        #expect(a.floatTensor().storage == [1.5, -2])
    }

    @Test("float64, int8, uint8 and bool convert to float32")
    func dtypes() throws {
        let f8 = [1.25, -3.0].flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
        #expect(try NpyArray.parse(handNpy(version: 1, descr: "<f8", shape: "(2,)", data: f8), path: "m").floatTensor().storage == [1.25, -3])
        #expect(try NpyArray.parse(handNpy(version: 1, descr: "|i1", shape: "(3,)", data: [0xFF, 0, 5]), path: "m").floatTensor().storage == [-1, 0, 5])
        #expect(try NpyArray.parse(handNpy(version: 1, descr: "|u1", shape: "(2,)", data: [200, 1]), path: "m").floatTensor().storage == [200, 1])
        #expect(try NpyArray.parse(handNpy(version: 1, descr: "|b1", shape: "(3,)", data: [1, 0, 1]), path: "m").floatTensor().storage == [1, 0, 1])
    }

    @Test("refusals name the file and the reason")
    func refusals() throws {
        func code(_ bytes: [UInt8]) -> NpyError.Code? {
            do { _ = try NpyArray.parse(bytes, path: "bad.npy"); return nil } catch let e as NpyError {
                #expect(e.description.hasPrefix("bad.npy: "))
                return e.code
            } catch { return nil }
        }
        #expect(code(Array("hello world, not numpy".utf8)) == .notNpy)
        #expect(code([]) == .notNpy)
        #expect(code(handNpy(version: 4, descr: "<f4", shape: "(1,)", data: floatBytes([1]))) == .unsupportedVersion(major: 4))
        #expect(code(handNpy(version: 1, descr: ">f4", shape: "(1,)", data: floatBytes([1]))) == .unsupportedDType(">f4"))
        #expect(code(handNpy(version: 1, descr: "<i4", shape: "(1,)", data: [1, 0, 0, 0])) == .unsupportedDType("<i4"))
        #expect(code(handNpy(version: 1, descr: "<c8", shape: "(1,)", data: [UInt8](repeating: 0, count: 8))) == .unsupportedDType("<c8"))
        #expect(code(handNpy(version: 1, descr: "<f4", fortran: true, shape: "(2, 2)", data: floatBytes([1, 2, 3, 4]))) == .fortranOrder)
        #expect(code(handNpy(version: 1, descr: "<f4", shape: "(3,)", data: floatBytes([1, 2]))) == .truncated(expected: 12, actual: 8))
        let full = handNpy(version: 1, descr: "<f4", shape: "(2,)", data: floatBytes([1, 2]))
        #expect(code(Array(full.prefix(20))) != nil)
        if case .badHeader? = code(handNpy(version: 1, descr: "<f4", shape: "[2]", data: floatBytes([1, 2]))) {
        } else {
            Issue.record("a list for the shape should be a bad header")
        }
    }

    @Test("reading a file refuses what parsing its bytes refuses, and reads headers longer than its first read")
    func readFromFile() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        func codes(_ bytes: [UInt8]) throws -> (parsed: NpyError.Code?, read: NpyError.Code?) {
            let path = dir.file("f.npy")
            try writeFile(path, bytes)
            func code(_ body: () throws -> NpyArray) -> NpyError.Code? {
                do { _ = try body(); return nil } catch let e as NpyError { return e.code } catch { return nil }
            }
            return (code { try NpyArray.parse(bytes, path: path) }, code { try NpyArray.read(path: path) })
        }
        let full = handNpy(version: 1, descr: "<f4", shape: "(2,)", data: floatBytes([1, 2]))
        for bad in [
            Array("not numpy".utf8), [], Array(full.prefix(20)), Array(full.prefix(full.count - 1)), full + [0],
            handNpy(version: 4, descr: "<f4", shape: "(1,)", data: floatBytes([1])),
            handNpy(version: 1, descr: "<i4", shape: "(1,)", data: [1, 0, 0, 0]),
            handNpy(version: 1, descr: "<f4", shape: "(3,)", data: floatBytes([1, 2]))
        ] {
            let c = try codes(bad)
            #expect(c.parsed != nil && c.read == c.parsed, "\(bad.count) bytes: parse \(String(describing: c.parsed)), read \(String(describing: c.read))")
        }
        // A version-2 header of 6,000 bytes (longer than the first read), then the data.
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }" + String(repeating: " ", count: 6000)
        while (12 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        let n = header.utf8.count
        let long = [0x93] + Array("NUMPY".utf8) + [2, 0, UInt8(n & 0xFF), UInt8((n >> 8) & 0xFF), 0, 0] + Array(header.utf8) + floatBytes([4, 5, 6])
        try writeFile(dir.file("long.npy"), long)
        #expect(try NpyArray.read(path: dir.file("long.npy")).floatTensor().storage == [4, 5, 6])
        // Its data cut short: truncated, counted against the whole file.
        try writeFile(dir.file("short.npy"), Array(long.prefix(5000)))
        #expect(throws: NpyError.self) { try NpyArray.read(path: dir.file("short.npy")) }
    }

    @Test("a missing file says it cannot be opened")
    func missing() {
        #expect(throws: NpyError.self) { try NpyArray.read(path: "/nonexistent/x.npy") }
    }

    @Test("rows written out of order land in place")
    func outputFile() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let path = dir.file("y.npy")
        do {
            let out = try NpyOutputFile(path: path, shape: [4, 2, 3], rowAxes: 2)
            #expect(out.rowElements == 3)
            let rows = (0..<8).map { r in (0..<3).map { Float(r * 10 + $0) } }
            for r in [5, 0, 7, 3] { try rows[r].withUnsafeBufferPointer { try out.write(rows: $0, at: r) } }
            let pair = rows[1] + rows[2]
            try pair.withUnsafeBufferPointer { try out.write(rows: $0, at: 1) }
            try rows[4].withUnsafeBufferPointer { try out.write(rows: $0, at: 4) }
            try rows[6].withUnsafeBufferPointer { try out.write(rows: $0, at: 6) }
            try out.flush()
            #expect(try out.read(rows: 1, at: 5) == rows[5])
        }
        let back = try NpyArray.read(path: path)
        #expect(back.shape == [4, 2, 3])
        #expect(back.floatTensor().storage == (0..<8).flatMap { r in (0..<3).map { Float(r * 10 + $0) } })
    }
}

@Suite("SHA-256")
struct SHA256Tests {
    @Test("FIPS 180-4 test vectors")
    func vectors() {
        #expect(SHA256.hex([UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            SHA256.hex(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test("streaming in uneven pieces gives the one-shot digest")
    func streaming() {
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        var h = SHA256()
        var i = 0
        for step in [1, 63, 64, 65, 200, 7, 600] where i < data.count {
            h.update(data[i..<min(i + step, data.count)])
            i += step
        }
        if i < data.count { h.update(data[i...]) }
        #expect(h.finalize() == SHA256.hex(data))
    }
}
