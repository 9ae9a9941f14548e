// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Loom",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "loom", targets: ["loom"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        // --metrics: swift-metrics' API in the engine, served in Prometheus's text format by the loom binary.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
    ],
    targets: [
        // System libraries.
        // OpenBLAS is loaded at run time (see Sources/COpenBLAS/include/COpenBLAS.h); apt libopenblas0-pthread.
        .target(name: "COpenBLAS", linkerSettings: [.linkedLibrary("dl")]),
        // libzmq, likewise, is loaded at run time (Sources/CZeroMQ/include/CZeroMQ.h): zmq.h comes from
        // apt libzmq3-dev at build time, libzmq.so.5 from libzmq5 when a socket is first needed.
        .target(name: "CZeroMQ", linkerSettings: [.linkedLibrary("dl")]),
        // libcrypto (SHA-256) too (Sources/COpenSSL/include/COpenSSL.h): apt libssl-dev to build, libssl3 to run.
        .target(name: "COpenSSL", linkerSettings: [.linkedLibrary("dl")]),
        // Threads, child processes and C formatting, without Foundation (whose ICU data would
        // double the binary and slow every process's start).
        .target(name: "LoomSystem", dependencies: ["CLoomSystem"]),
        .target(name: "ZeroMQ", dependencies: ["CZeroMQ", "LoomSystem"]),
        // Data path: tensors and .npy files -> ONNX runtime -> tangermeme functions -> product engine.
        .systemLibrary(name: "CLoomSystem"),
        .target(name: "LoomTensor", dependencies: ["COpenSSL", "CLoomSystem"]),
        // FASTA and BED inputs: zlib (apt zlib1g-dev) for gzip and bgzip files.
        .systemLibrary(name: "CZlib"),
        .target(name: "LoomGenome", dependencies: ["LoomTensor", "CZlib"]),
        // Element-wise transcendental functions in C, built for SSE2 and for AVX2 (chosen at run time, same bits).
        .target(name: "CLoomVector"),
        .target(name: "LoomONNX", dependencies: ["LoomTensor", "COpenBLAS", "CLoomVector"]),
        .target(name: "LoomFunctions", dependencies: ["LoomTensor", "LoomONNX"]),
        .target(
            name: "LoomProduct",
            dependencies: [
                "LoomTensor", "LoomONNX", "LoomFunctions", "LoomGenome", "LoomSystem", .product(name: "CoreMetrics", package: "swift-metrics"),
            ]),
        .target(name: "LoomCluster", dependencies: [
            "LoomTensor", "LoomONNX", "LoomFunctions", "LoomGenome", "LoomProduct", "ZeroMQ", "LoomSystem",
            .product(name: "Logging", package: "swift-log"),
        ]),
        // The deterministic simulation: the real cores in a seeded, simulated cluster.
        .target(name: "LoomSimulation", dependencies: ["LoomCluster", "LoomProduct"]),
        .executableTarget(name: "loom-simulate", dependencies: [
            "LoomSimulation", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        // The fuzzer: hostile messages and mutated files against real processes (scripts/fuzz).
        .target(name: "LoomFuzz", dependencies: ["LoomCluster", "LoomSimulation"]),
        .executableTarget(name: "loom-fuzz", dependencies: [
            "LoomFuzz", "LoomCluster", "ZeroMQ", "LoomTestSupport", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "loom", dependencies: [
            "LoomTensor", "LoomONNX", "LoomFunctions", "LoomGenome", "LoomProduct", "LoomCluster", "CLoomSystem", "LoomSystem",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        // Tests.
        .target(name: "LoomTestSupport", dependencies: ["LoomTensor"], path: "Tests/LoomTestSupport"),
        .testTarget(name: "LoomTensorTests", dependencies: ["LoomTensor", "LoomTestSupport"]),
        .testTarget(name: "LoomONNXTests", dependencies: ["LoomONNX", "LoomTensor", "LoomTestSupport", "CLoomVector"]),
        .testTarget(name: "LoomFunctionsTests", dependencies: ["LoomFunctions", "LoomONNX", "LoomTensor", "LoomTestSupport"]),
        .testTarget(name: "LoomProductTests", dependencies: ["LoomProduct", "LoomGenome", "LoomFunctions", "LoomONNX", "LoomTensor", "LoomTestSupport"]),
        .testTarget(name: "LoomCLITests", dependencies: ["LoomTensor", "LoomTestSupport", "LoomCluster", "LoomFuzz", "ZeroMQ"]),
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ"]),
        .testTarget(name: "LoomSystemTests", dependencies: ["LoomSystem"]),
        .testTarget(name: "LoomClusterTests", dependencies: ["LoomCluster", "LoomProduct", "LoomSimulation", "LoomTestSupport"]),
    ]
)
