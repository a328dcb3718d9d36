import Machine
import DeviceModels
import Glibc
import IOMMU
import PCIBus
import SampleDrivers
import VFIO
import UserMemory

/// What the isolation property runs against: a machine with one memcpy engine per chosen group,
/// each opened the way a userspace driver opens it (its own type1v2 container, bus mastering on),
/// each container with one buffer of process memory that its mappings point into, and a shadow
/// of every buffer: the bytes it must hold if DMA reaches only what the device's own container
/// maps. IOVAs come from a small window, so different containers map the same IOVAs to
/// different buffers and a device aims at IOVAs mapped only in other containers all the time.
final class ContainerIsolationModel {
    static let page: UInt64 = 0x1000
    static let bufferPages = 16
    static let windowBase: UInt64 = 0x10_0000
    static let windowPages = 48

    struct Mapping {
        let iova: UInt64
        let size: UInt64
        /// Offset of the mapped pages in the container's buffer.
        let bufferOffset: Int
        var last: UInt64 { iova + size - 1 }
    }

    /// One device, its container and what that container maps.
    final class Endpoint {
        let device: UserspaceDevice
        var port: DMAPort
        let buffer: HostMemory
        var shadow: [UInt8]
        var mappings: [Mapping] = []

        init(device: UserspaceDevice, port: DMAPort, buffer: HostMemory, shadow: [UInt8]) {
            self.device = device
            self.port = port
            self.buffer = buffer
            self.shadow = shadow
        }

        func mapping(containing iova: UInt64) -> Mapping? { mappings.first { $0.iova <= iova && iova <= $0.last } }

        /// The bytes from `iova` this container maps without a hole (up to `length`).
        func mappedPrefix(_ iova: UInt64, _ length: Int) -> Int {
            var done = 0
            while done < length, let mapping = mapping(containing: iova + UInt64(done)) {
                done += min(length - done, Int(mapping.last - (iova + UInt64(done))) + 1)
            }
            return done
        }

        /// Where `iova` lands in the buffer.
        func bufferOffset(_ iova: UInt64) -> Int {
            let mapping = mapping(containing: iova)!
            return mapping.bufferOffset + Int(iova - mapping.iova)
        }

        /// Whether the real buffer holds exactly the shadow.
        var bufferMatchesShadow: Bool {
            shadow.withUnsafeBytes { memcmp(buffer.pointer, $0.baseAddress!, $0.count) == 0 }
        }
    }

    let machine: SimulatedMachine
    let endpoints: [Endpoint]

    /// Engines at `addresses` (one per group) on `snapshot`'s machine, each opened in its own container.
    init(snapshot: BusSnapshot, addresses: [PCIAddress], random: inout SplitMix64) throws {
        let machine = try SimulatedMachine(base: snapshot, requests: addresses.map { .init(address: $0, model: "memcpy-engine") })
        self.machine = machine
        let engines = addresses.map { machine.devices[$0]! }
        var endpoints: [Endpoint] = []
        for engine in engines {
            let device = try UserspaceDevice(engine.address, in: machine.vfio)
            try device.setBusMaster(true)
            let buffer = try machine.process.allocate(size: UInt64(Self.bufferPages) * Self.page)
            let shadow = (0..<Int(buffer.size)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            shadow.withUnsafeBytes { buffer.pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            endpoints.append(Endpoint(device: device, port: engine.dmaPort(), buffer: buffer, shadow: shadow))
        }
        self.endpoints = endpoints
    }

    /// A random page-aligned range of the window, one to four pages.
    static func randomRange(_ random: inout SplitMix64) -> (iova: UInt64, size: UInt64) {
        let pages = 1 + random.below(4)
        return (windowBase + UInt64(random.below(windowPages - pages + 1)) * page, UInt64(pages) * page)
    }

    func close() {
        for endpoint in endpoints { endpoint.device.close() }
    }
}
