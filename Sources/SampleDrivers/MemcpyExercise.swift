import Glibc
import VFIO

/// What the sample drivers and `vfiokit demo` all do with an initialised driver (the memcpy engine's,
/// the loopback NIC's): copies verified byte for byte, then a copy from an IOVA that was never
/// mapped, which the IOMMU must contain (the destination untouched, no interrupt).
public struct MemcpyExercise<Driver: VFIOPCIDriver> {
    public let driver: Driver

    public init(_ driver: Driver) { self.driver = driver }

    /// The outcome of `copy`.
    public struct Copies: Sendable {
        public let count: Int
        public let bytesEach: UInt64
        /// Every copy completed and its destination equals its source.
        public let verified: Bool
        /// Completion interrupts read from the eventfd.
        public let interrupts: Int
    }

    /// `count` copies of `size` bytes (at most the engine's `max_memcpy_size`) through four
    /// buffer slots, each followed by a completion interrupt, every one verified.
    public func copy(count: Int, size: UInt64) throws(VFIOError) -> Copies {
        let device = driver.device
        let chunk = min(size, driver.maxMemcpySize)
        let source = try device.mapDMA(size: chunk * 4)
        let destination = try device.mapDMA(size: chunk * 4)
        defer {
            try? device.unmapDMA(source)
            try? device.unmapDMA(destination)
        }
        var verified = true
        var interrupts = 0
        for copy in 0..<count {
            let slot = UInt64(copy % 4) * chunk
            let pattern = UInt8(truncatingIfNeeded: copy &* 37 &+ 11)
            memset(source.bytes.baseAddress! + Int(slot), Int32(pattern), Int(chunk))
            let failure = try driver.memcpy(source: source.iova + slot, destination: destination.iova + slot, size: chunk)
            try driver.sendMSI()
            interrupts += Int(driver.interrupt.read() ?? 0)
            verified = verified && failure == nil
                && memcmp(source.bytes.baseAddress! + Int(slot), destination.bytes.baseAddress! + Int(slot), Int(chunk)) == 0
        }
        return Copies(count: count, bytesEach: chunk, verified: verified, interrupts: interrupts)
    }

    /// The outcome of `copyFromUnmapped`.
    public struct ContainedFault: Sendable {
        public let iova: UInt64
        /// The driver's report of the halted channel; nil when the copy (wrongly) completed.
        public let failure: String?
        public let destinationUntouched: Bool
        public let interruptRaised: Bool
        /// The IOMMU stopped the copy and nothing reached memory or the eventfd.
        public var contained: Bool { failure != nil && destinationUntouched && !interruptRaised }
    }

    /// A copy of `size` bytes from `iova`, which was never mapped, into a freshly filled buffer.
    public func copyFromUnmapped(iova: UInt64 = 0xdead_0000, size: UInt64 = 4096) throws(VFIOError) -> ContainedFault {
        let destination = try driver.device.mapDMA(size: size)
        defer { try? driver.device.unmapDMA(destination) }
        destination.bytes.initializeMemory(as: UInt8.self, repeating: 0xa5)
        let failure = try driver.memcpy(source: iova, destination: destination.iova, size: size)
        return ContainedFault(
            iova: iova, failure: failure, destinationUntouched: destination.bytes.allSatisfy { $0 == 0xa5 },
            interruptRaised: driver.interrupt.read() != nil)
    }
}
