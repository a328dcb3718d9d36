import PCIBus

/// The identity maps firmware asks for (RR-05): what a DMA-API default domain maps for its devices.
extension IOMMUCore.State {
    /// `iommu_create_device_direct_mappings` (RR-05): identity-maps the device's `direct` and
    /// `direct-relaxable` regions, rounded out to the minimum page, skipping what is mapped.
    func createDirectMappings(for device: IOMMUDevice, in domain: IOMMUDomain) throws(IOMMUError) {
        let page = domain.pageSizes.minimumPageSize
        for region in device.reservedRegions where region.type == .direct || region.type == .directRelaxable {
            let start = region.start & ~(page - 1)
            let end = region.last | (page - 1)
            var iova = start
            var run: UInt64?
            while true {
                if case .fault(.notPresent) = domain.translate(iova, access: []) {
                    run = run ?? iova
                } else if let first = run {
                    try domain.map(iova: first, to: first, size: iova - first, access: .readWrite)
                    run = nil
                }
                if end - iova < page { break }
                iova += page
            }
            if let first = run { try domain.map(iova: first, to: first, size: end - first + 1, access: .readWrite) }
        }
    }
}
