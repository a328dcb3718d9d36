import KernelRules
import SystemPackage

/// `struct iommu_domain_geometry` (DOM-05): the IOVA window a domain translates, inclusive at both
/// ends, and whether DMA outside it is blocked (`force_aperture`) or bypasses translation.
public struct DomainGeometry: Sendable, Equatable, Hashable, CustomStringConvertible {
    public let apertureStart: UInt64
    /// Inclusive, as the kernel stores `aperture_end`.
    public let apertureEnd: UInt64
    public let forceAperture: Bool

    /// Validates `aperture_start <= aperture_end` (project policy of the spec: geometry is validated).
    public init(apertureStart: UInt64, apertureEnd: UInt64, forceAperture: Bool) throws(IOMMUError) {
        guard apertureStart <= apertureEnd else {
            throw IOMMUError(
                .invalidArgument, rule: .DOM_05,
                "geometry: aperture_start 0x\(String(apertureStart, radix: 16)) is above aperture_end 0x\(String(apertureEnd, radix: 16))")
        }
        self.apertureStart = apertureStart
        self.apertureEnd = apertureEnd
        self.forceAperture = forceAperture
    }

    /// An aperture of `bits` address bits starting at 0, forced.
    public static func addressWidth(_ bits: Int) -> DomainGeometry {
        try! DomainGeometry(apertureStart: 0, apertureEnd: bits >= 64 ? .max : (1 << UInt64(bits)) - 1, forceAperture: true)
    }

    public func contains(_ iova: UInt64) -> Bool { iova >= apertureStart && iova <= apertureEnd }

    /// Address bits needed to cover `aperture_end`.
    public var addressBits: Int { 64 - apertureEnd.leadingZeroBitCount }

    public var description: String {
        "aperture [0x\(String(apertureStart, radix: 16)), 0x\(String(apertureEnd, radix: 16))], force_aperture \(forceAperture)"
    }
}
