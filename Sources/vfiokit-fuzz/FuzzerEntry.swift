import FuzzTargets

#if canImport(Glibc)
    import Glibc
#endif

/// The libFuzzer driver: `VFIOKIT_FUZZ_TARGET` names the target (`FuzzRegistry`), libFuzzer
/// supplies `main` and calls the two functions below. Built only by `Fuzz/run` (see
/// Package.swift); run it as any libFuzzer binary:
///
///     VFIOKIT_FUZZ_TARGET=dump .build-fuzz/release/vfiokit-fuzz Fuzz/corpus/dump
let selectedTarget: FuzzEntryPoint = {
    let name = getenv("VFIOKIT_FUZZ_TARGET").map { String(cString: $0) } ?? ""
    guard let target = FuzzRegistry.targets[name] else {
        let usage = "vfiokit-fuzz: set VFIOKIT_FUZZ_TARGET to one of: \(FuzzRegistry.names.joined(separator: ", "))\n"
        _ = usage.withCString { write(STDERR_FILENO, $0, strlen($0)) }
        exit(2)
    }
    return target
}()

/// Selects the target and runs the empty input once, so a harness that cannot set up (a missing
/// `devices/default`) stops before fuzzing starts.
@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(
    _ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
) -> Int32 {
    selectedTarget(UnsafeRawBufferPointer(start: nil, count: 0))
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    selectedTarget(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
