/// Loom's version, recorded in manifests and claims, printed by `loom --version`, and compared
/// between the roles of a cluster.
public enum LoomVersion {
    /// The release.
    public static let release = "0.1.0"

    /// The version of Loom's arithmetic: raised whenever a change can alter the bits of any
    /// result (a kernel's order of operations, an approximation, a reverse rule).
    ///
    /// It is part of ``string``, so roles of different numerics refuse each other, and part of a
    /// job's identity, so a results folder is never resumed by a Loom that would compute other
    /// bits: one `y.npy` never mixes two. `NumericsFingerprintTests` fails when results change
    /// and this does not. History: 1 until 2026-11-30; 2 from Eigen's erf and the fused GELU; 3
    /// from deep-lift-shap's reverse pass over the examples' half (a dense layer's GEMM over half
    /// the rows may round differently).
    public static let numerics = 3

    /// The release with its numerics, `0.1.0+numerics.3`: what two processes must share.
    public static let string = "\(release)+numerics.\(numerics)"
}
