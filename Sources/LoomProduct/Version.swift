/// Loom's version, recorded in manifests and printed by `loom --version`.
public enum LoomVersion {
    public static let string = "0.1.0"
}
