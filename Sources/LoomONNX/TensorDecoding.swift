import LoomTensor

#if canImport(Glibc)
    import Glibc
#endif

/// Turns `TensorProto`s (initializers and Constant attributes) into ``Value``s.
struct TensorDecoder {
    /// The model file, for messages.
    let file: String
    /// The folder external data files are resolved against.
    let directory: String
    /// External data files read so far, by location.
    private(set) var externalFiles: [String: [UInt8]] = [:]

    init(file: String) {
        self.file = file
        if let slash = file.lastIndex(of: "/") { directory = String(file[..<slash]) } else { directory = "." }
    }

    /// Every external data file read, in location order, for the model's identity hash.
    var externalFilesInOrder: [(String, [UInt8])] { externalFiles.sorted { $0.key < $1.key }.map { ($0.key, $0.value) } }

    mutating func decode(_ t: ONNXProto.TensorProto) throws -> Value {
        let what = t.name.isEmpty ? "a constant tensor" : "tensor '\(t.name)'"
        guard t.dims.allSatisfy({ $0 >= 0 && $0 < (1 << 40) }) else {
            throw ONNXError(file: file, kind: .corrupt, detail: "\(what) has impossible dims \(t.dims)")
        }
        let shape = t.dims.map { Int($0) }
        guard let count = shape.checkedElementCount() else {
            throw ONNXError(file: file, kind: .corrupt, detail: "\(what) has dims \(t.dims), whose product is impossibly large")
        }
        guard let type = ONNXProto.DataType(rawValue: t.dataType) else {
            throw ONNXError(file: file, kind: .invalidModel, detail: "\(what) has data type \(t.dataType), which Loom does not read")
        }
        var raw = t.rawData
        if t.dataLocationExternal || !t.externalData.isEmpty {
            raw = try readExternal(t, what: what)
        }
        func need(_ bytes: Int) throws -> [UInt8] {
            guard let raw else { return [] }
            guard raw.count == bytes else {
                throw ONNXError(file: file, kind: .corrupt, detail: "\(what) holds \(raw.count) bytes of data; its shape \(shape) needs \(bytes)")
            }
            return raw
        }
        func checkCount(_ n: Int) throws {
            guard n == count else {
                throw ONNXError(file: file, kind: .corrupt, detail: "\(what) holds \(n) values; its shape \(shape) needs \(count)")
            }
        }
        switch type {
        case .float:
            if raw != nil {
                let bytes = try need(count * 4)
                return .float(
                    Tensor(shape: shape) { out in
                        bytes.withUnsafeBytes { src in
                            for i in 0..<count { out[i] = Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
                        }
                    })
            }
            try checkCount(t.floatData.count)
            return .float(Tensor(shape: shape, storage: t.floatData))
        case .double:
            if raw != nil {
                let bytes = try need(count * 8)
                return .float(
                    Tensor(shape: shape) { out in
                        bytes.withUnsafeBytes { src in
                            for i in 0..<count {
                                out[i] = Float(Double(bitPattern: UInt64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
                            }
                        }
                    })
            }
            try checkCount(t.doubleData.count)
            return .float(Tensor(shape: shape, storage: t.doubleData.map { Float($0) }))
        case .int64:
            if raw != nil {
                let bytes = try need(count * 8)
                return .int64(
                    Tensor(shape: shape) { out in
                        bytes.withUnsafeBytes { src in
                            for i in 0..<count { out[i] = Int64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)) }
                        }
                    })
            }
            try checkCount(t.int64Data.count)
            return .int64(Tensor(shape: shape, storage: t.int64Data))
        case .int32, .int16, .int8, .uint8, .uint16, .bool:
            if raw != nil {
                let width: Int =
                    switch type {
                    case .int32: 4;
                    case .int16, .uint16: 2;
                    default: 1
                    }
                let bytes = try need(count * width)
                return .int64(
                    Tensor(shape: shape) { out in
                        bytes.withUnsafeBytes { src in
                            for i in 0..<count {
                                switch type {
                                case .int32: out[i] = Int64(Int32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
                                case .int16: out[i] = Int64(Int16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)))
                                case .uint16: out[i] = Int64(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
                                case .int8: out[i] = Int64(Int8(bitPattern: src[i]))
                                default: out[i] = Int64(src[i])
                                }
                            }
                        }
                    })
            }
            try checkCount(t.int32Data.count)
            return .int64(Tensor(shape: shape, storage: t.int32Data))
        default:
            throw ONNXError(
                file: file, kind: .invalidModel, detail: "\(what) has data type \(type), which Loom does not read (float, double and integer types are)")
        }
    }

    private mutating func readExternal(_ t: ONNXProto.TensorProto, what: String) throws -> [UInt8] {
        guard let location = t.externalData["location"], !location.isEmpty else {
            throw ONNXError(file: file, kind: .corrupt, detail: "\(what) is stored externally but names no location")
        }
        guard !location.hasPrefix("/"), !location.split(separator: "/").contains("..") else {
            throw ONNXError(
                file: file, kind: .invalidModel,
                detail: "\(what) names external data '\(location)' outside the model's folder; Loom only reads data beside the model")
        }
        let path = directory + "/" + location
        if externalFiles[location] == nil {
            // A regular file inside the model's folder, symbolic links resolved: a link out of the
            // folder would ship any file this process can read to every worker.
            // (A file that does not exist is reported by the read below.)
            func resolved(_ p: String) -> String? {
                realpath(p, nil).map { r in
                    defer { free(r) }; return String(cString: r)
                }
            }
            if let real = resolved(path), let folder = resolved(directory.isEmpty ? "." : directory) {
                guard real.hasPrefix(folder.hasSuffix("/") ? folder : folder + "/") else {
                    throw ONNXError(
                        file: path, kind: .invalidModel,
                        detail: "the external data of \(what) lies outside the model's folder (through a symbolic link); Loom only reads data beside the model")
                }
                var st = stat()
                guard stat(real, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
                    throw ONNXError(file: path, kind: .invalidModel, detail: "the external data of \(what) is not a regular file")
                }
            }
            do { externalFiles[location] = try FileIO.readAll(path) } catch {
                throw ONNXError(file: path, kind: .io, detail: "cannot read the external data of \(what) (\(error.description)); keep it beside the model file")
            }
        }
        let data = externalFiles[location]!
        let offset = Int(t.externalData["offset"] ?? "0") ?? -1
        let length = t.externalData["length"].flatMap { Int($0) } ?? (data.count - max(offset, 0))
        // Overflow-safe: offset + length could pass Int.max.
        guard offset >= 0, length >= 0, offset <= data.count, length <= data.count - offset else {
            throw ONNXError(
                file: path, kind: .corrupt,
                detail: "\(what) wants \(length) bytes from offset \(offset), the file has \(data.count): truncated or corrupt external data")
        }
        return Array(data[offset..<(offset + length)])
    }
}
