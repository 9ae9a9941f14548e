import LoomTensor

/// Loom's version, recorded in manifests and printed by `loom --version`.
public enum LoomVersion {
    public static let string = "0.1.0"
}

/// File helpers re-exported under a name that does not clash with Foundation's.
typealias LoomTensorFile = FileIO
