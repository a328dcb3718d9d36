/// One fuzz target's entry point: consumes one input. It must return normally for every input —
/// errors are answers, not failures — and traps only when it catches the code under test breaking
/// an invariant (memory written that no mapping allowed, a buffer read past its end).
public typealias FuzzEntryPoint = @Sendable (UnsafeRawBufferPointer) -> Void

/// The fuzz targets by name: what `VFIOKIT_FUZZ_TARGET` selects in `vfiokit-fuzz`, what
/// `Fuzz/corpus/<name>/` seeds, and what the regression tests replay.
public enum FuzzRegistry {
    public static let targets: [String: FuzzEntryPoint] = [
        "dump": DumpTarget.run,
        "config-space": ConfigSpaceTarget.run,
        "uapi": UAPITarget.run,
        "iommufd": IOMMUFDTarget.run,
        "memcpy-engine": MemcpyEngineTarget.run,
        "cbdma": CBDMATarget.run,
        "loopback-nic": LoopbackNICTarget.run,
        "nvme": NVMeTarget.run,
        "preload": PreloadTarget.run,
    ]

    /// Target names, sorted.
    public static var names: [String] { targets.keys.sorted() }
}
