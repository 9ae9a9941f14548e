import Foundation
import LoomProduct

/// The leaves a manifest lists, for `loom show`.
enum ManifestLeaves {
    static func read(_ path: String) throws -> [Manifest.Output] {
        try Manifest.read(path: path).outputs
    }
}
