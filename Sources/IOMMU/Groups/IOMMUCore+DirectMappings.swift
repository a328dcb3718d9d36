import PCIBus

/// The identity maps firmware asks for (RR-05): what a DMA-API default domain maps for its devices.
extension IOMMUCore.State {
    /// `iommu_create_device_direct_mappings` (RR-05): identity-maps the device's `direct` and
    /// `direct-relaxable` regions, each from its start rounded up to the minimum page (`ALIGN`) to
    /// its end (`start + length`) rounded up, skipping pages already mapped. A region smaller than
    /// a page that does not hold a page boundary maps nothing, as in the kernel.
    func createDirectMappings(for device: IOMMUDevice, in domain: IOMMUDomain) throws(IOMMUError) {
        let page = domain.pageSizes.minimumPageSize
        for region in device.reservedRegions where region.type == .direct || region.type == .directRelaxable {
            // Wrapping as the kernel's dma_addr_t does: a region ending at 2^64 - 1 has end 0.
            let start = Self.alignUp(region.start, page)
            let end = Self.alignUp(region.last &+ 1, page)
            guard start < end else { continue }
            var iova = start
            var run: UInt64?
            while iova < end {
                if case .fault(.notPresent) = domain.translate(iova, access: []) {
                    run = run ?? iova
                } else if let first = run {
                    try domain.map(iova: first, to: first, size: iova - first, access: .readWrite)
                    run = nil
                }
                iova += page
            }
            if let first = run { try domain.map(iova: first, to: first, size: end - first, access: .readWrite) }
        }
    }

    /// `ALIGN(value, page)` for a power-of-two page, wrapping at 2^64.
    private static func alignUp(_ value: UInt64, _ page: UInt64) -> UInt64 { (value &+ (page - 1)) & ~(page - 1) }
}
