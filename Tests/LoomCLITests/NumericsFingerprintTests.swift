import Foundation
import LoomProduct
import LoomTensor
import LoomTestSupport
import Testing

/// The bits of Loom's results on five zoo models, with kernels every x86-64 CPU runs alike.
///
/// A change that alters them must raise `LoomVersion.numerics`, so that no results folder is
/// resumed, and no job shared between roles, across it, then record the new fingerprints here.
/// The models cover the engine's own arithmetic: convolutions and GEMMs on OpenBLAS's SSE3
/// (`Prescott`) kernels, erf and GELU, layer norm and softmax, the activations' derivatives,
/// the module and MaxPool rules, the shared forward pass of deep-lift-shap. (Not the LSTM: its
/// gates call glibc's expf and tanhf, whose results may vary with the CPU.)
@Suite("numerics: a change to the results' bits raises LoomVersion.numerics")
struct NumericsFingerprintTests {
    /// The `LoomVersion.numerics` these fingerprints were recorded under.
    static let recordedUnder = 3

    /// SHA-256 of `y.npy`, each case run with `--kernels sse3 --workers 0`.
    static let fingerprints: [String: String] = [
        "zoo_basenji_classic_predict": "84496ebad47aeba444701376161498a5f2bd6c86d5ba530a307c6b80b3d1a0c7",
        "zoo_basenji_classic_deep_lift_shap": "f95a9831ddcee5400edb36711ff67806d91cb8307ab923f60b0cf4f10ed20a23",
        "zoo_mixed_functional_dynamo_deep_lift_shap": "d1b78053d80bcd3491ed6b66977360cb6a7f8e9e033907a9b777b1f473574ce5",
        "zoo_transformer_classic_predict": "7e555e25391abed5a93340e2243f5a1b6251bbdda0021a8d7599de9b014f8189",
        "zoo_bpnet_counts_classic_deep_lift_shap": "452c3563de67801c47e9f26db9ed412565594646804663de7b1d4ee8c03991ed"
    ]

    @Test("the fingerprints are those of this Loom's numerics")
    func recordedUnderThisNumerics() {
        #expect(
            LoomVersion.numerics == Self.recordedUnder,
            "LoomVersion.numerics is \(LoomVersion.numerics), the fingerprints were recorded under \(Self.recordedUnder): record them again")
    }

    @Test("a case's results have the recorded bits", arguments: fingerprints.keys.sorted())
    func sameBits(_ name: String) throws {
        let c = try ConformanceCase(directory: Repository.conformanceDirectory + "/" + name)
        let out = TemporaryDirectory()
        defer { out.remove() }
        let r = try runLoom(["run"] + c.argv + ["--kernels", "sse3", "--workers", "0", "--out", out.path, "--quiet"], cwd: c.directory)
        try #require(r.status == 0, "stderr: \(r.stderr)")
        let got = try SHA256.hex(ofFile: out.file("y.npy"))
        #expect(
            got == Self.fingerprints[name],
            "\(name): the results' bits changed (y.npy sha256 \(got)). If the change is meant, raise LoomVersion.numerics and record the new fingerprints in NumericsFingerprintTests"
        )
    }
}
