import ArgumentParser
import LoomTensor

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs a command body; any error becomes one line on stderr and exit status 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let e as ExitCode {
        throw e
    } catch {
        let text = String(describing: error).replacing("\n", with: " ")
        Console.log(level: "error", text)
        throw ExitCode(1)
    }
}
