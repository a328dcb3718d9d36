/// The type1 module parameters (T1-01) and the project's policy switch, per container.
public struct VFIOContainerOptions: Sendable, Hashable {
    /// `allow_unsafe_interrupts`: attach groups whose IOMMU cannot remap interrupts (T1-50 step 9).
    public var allowUnsafeInterrupts: Bool
    /// Project policy (T1-44): type1 refuses domains that do not force their aperture, because
    /// DMA outside it bypasses translation; this opt-in lifts the refusal.
    public var allowBypassingIOMMU: Bool
    /// `dma_entry_limit`: MAP_DMA entries per container (T1-01, T1-18).
    public var dmaEntryLimit: UInt32

    public init(allowUnsafeInterrupts: Bool = false, allowBypassingIOMMU: Bool = false, dmaEntryLimit: UInt32 = 65535) {
        self.allowUnsafeInterrupts = allowUnsafeInterrupts
        self.allowBypassingIOMMU = allowBypassingIOMMU
        self.dmaEntryLimit = dmaEntryLimit
    }
}
