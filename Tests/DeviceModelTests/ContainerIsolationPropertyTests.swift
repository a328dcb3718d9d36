import DeviceModels
import IOMMU
import KernelRules
import Machine
import PCIBus
import SampleDrivers
import SystemPackage
import Testing
import UserMemory
import VFIO

/// Functions in different groups cannot reach each other's memory through the IOMMU. On generated
/// machines (`RandomTopology`), memcpy engines in two to four different groups each get their own
/// type1v2 container (VG-11: the group's DMA ownership; T1-50: its own paging domain) and random
/// calls map and unmap (T1-17, T1-33) pages of each container's buffer at IOVAs the containers
/// share, while the engines DMA (reads and writes through their `DMAPort`) at IOVAs mapped in any
/// container. A transfer completes exactly as far as the device's own container maps it, then
/// faults at the first unmapped page (recorded with its requester ID); a write lands only in its
/// own container's buffer, so every buffer always equals its shadow. Each machine ends with a
/// sweep: every device writes at every page mapped in every other container. A failure names
/// the topology seed, which replays the machine and the calls.
@Suite("Isolation between groups in different containers (VG-11, T1-17, T1-33, T1-50, DOM-01)")
struct ContainerIsolationPropertyTests {
    typealias Model = ContainerIsolationModel
    static let machinesPerSeed = 25
    static let callsPerMachine = 200

    struct Tally {
        var machines = 0
        var skipped = 0
        var transfers = 0
        var completed = 0
        var faulted = 0
        /// Sweep writes at a page only another container maps: must fault.
        var foreignFaults = 0
        /// Sweep writes at a page both containers map: must land in the device's own buffer.
        var sharedIOVAWrites = 0
    }

    @Test("25 machines × 200 calls per seed, then a sweep of every foreign IOVA", arguments: [0xd3a0_0001, 0xd3a0_0002] as [UInt64])
    func randomSequences(seed: UInt64) throws {
        var seeds = SplitMix64(seed: seed)
        var tally = Tally()
        while tally.machines < Self.machinesPerSeed, tally.skipped < 4 * Self.machinesPerSeed {
            let topologySeed = seeds.next()
            var random = SplitMix64(seed: ~topologySeed)
            guard let (snapshot, addresses) = Self.machine(topologySeed, &random) else {
                tally.skipped += 1
                continue
            }
            let model = try Model(snapshot: snapshot, addresses: addresses, random: &random)
            defer { model.close() }
            tally.machines += 1
            let machine = "topology seed 0x\(String(topologySeed, radix: 16)) engines \(addresses)"
            for call in 0..<Self.callsPerMachine {
                try Self.randomCall(model, &random, at: "\(machine), call \(call)", tally: &tally)
            }
            try Self.sweep(model, at: machine, tally: &tally)
        }
        #expect(tally.machines == Self.machinesPerSeed, "enough generated machines have two groups with a single-function endpoint: \(tally)")
        #expect(
            tally.completed > 1000 && tally.faulted > 1000 && tally.foreignFaults > 800 && tally.sharedIOVAWrites > 200,
            "the calls exercise completed, faulting, foreign and shared-IOVA transfers: \(tally)")
    }

    /// The machine of `seed` (ports bound to pcieport, everything else unbound, a random ACS
    /// policy) and two to four single-function endpoints in different groups, or nil if it has fewer.
    static func machine(_ seed: UInt64, _ random: inout SplitMix64) -> (BusSnapshot, [PCIAddress])? {
        let topology = RandomTopology(seed: seed).topology
        var drivers: [PCIAddress: String] = [:]
        for function in topology.functions where [.rootPort, .upstreamPort, .downstreamPort].contains(function.pciePortType) {
            drivers[function.address] = "pcieport"
        }
        let snapshot = BusSnapshot(
            origin: .dump(path: "<RandomTopology seed 0x\(String(seed, radix: 16))>"), topology: topology.binding(drivers),
            configuration: .init(platform: .intelVTd, acsPolicy: ACSEnablePolicy.allCases[random.below(2)]))
        var byGroup: [Int: PCIAddress] = [:]
        for function in topology.functions where !function.isBridge && !function.isMultifunction && function.classID != 0x0600 {
            guard let id = snapshot.grouping.group(of: function.address)?.id, byGroup[id] == nil else { continue }
            byGroup[id] = function.address
        }
        var chosen = byGroup.values.sorted()
        chosen.shuffle(using: &random)
        return chosen.count < 2 ? nil : (snapshot, Array(chosen.prefix(2 + random.below(3))).sorted())
    }

    static func randomCall(_ model: Model, _ random: inout SplitMix64, at: String, tally: inout Tally) throws {
        let endpoints = model.endpoints
        let endpoint = endpoints[random.below(endpoints.count)]
        switch random.below(10) {
        case 0, 1:
            let (iova, size) = Model.randomRange(&random)
            let offset = random.below(Model.bufferPages - Int(size / Model.page) + 1) * Int(Model.page)
            map(endpoint, iova: iova, size: size, bufferOffset: offset, at: "\(at): map [0x\(String(iova, radix: 16)), +0x\(String(size, radix: 16))) in \(endpoint.device.container)")
        case 2:
            guard !endpoint.mappings.isEmpty else { return }
            let mapping = endpoint.mappings.remove(at: random.below(endpoint.mappings.count))
            let unmapped = try endpoint.device.container.unmap(iova: mapping.iova, size: mapping.size)
            #expect(unmapped == mapping.size, "\(at): unmap 0x\(String(mapping.iova, radix: 16)) in \(endpoint.device.container)")
        default:
            // Aim at a mapping of any container, often another one's, from a random offset.
            let target = endpoints[random.below(endpoints.count)]
            let iova =
                target.mappings.isEmpty
                ? Model.randomRange(&random).iova
                : target.mappings[random.below(target.mappings.count)].iova + UInt64(random.below(Int(Model.page) * 2))
            let length = 1 + random.below(300)
            if random.below(2) == 0 {
                let payload = (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                transfer(write: payload, from: endpoint, to: iova, in: model, at: "\(at): \(endpoint.device.address) writes \(length) bytes at 0x\(String(iova, radix: 16))", tally: &tally)
            } else {
                read(length, from: endpoint, at: iova, in: model, at: "\(at): \(endpoint.device.address) reads \(length) bytes at 0x\(String(iova, radix: 16))", tally: &tally)
            }
        }
    }

    /// MAP_DMA in the endpoint's container: EEXIST exactly when it overlaps one of its own mappings (T1-17).
    static func map(_ endpoint: Model.Endpoint, iova: UInt64, size: UInt64, bufferOffset: Int, at: String) {
        let overlaps = endpoint.mappings.contains { $0.iova <= iova + size - 1 && iova <= $0.last }
        do throws(VFIOError) {
            try endpoint.device.container.map(vaddr: endpoint.buffer.address + UInt64(bufferOffset), iova: iova, size: size)
            #expect(!overlaps, "\(at): succeeded over an existing mapping")
            endpoint.mappings.append(Model.Mapping(iova: iova, size: size, bufferOffset: bufferOffset))
        } catch {
            #expect(overlaps && error.errno == .fileExists, "\(at): \(error)")
        }
    }

    /// A DMA write: completes as far as the device's own container maps it, lands only there.
    static func transfer(write payload: [UInt8], from endpoint: Model.Endpoint, to iova: UInt64, in model: Model, at: String, tally: inout Tally) {
        let expected = endpoint.mappedPrefix(iova, payload.count)
        let faultsBefore = model.machine.core.faults.counters.total
        var fault: DMAFault?
        payload.withUnsafeBytes { bytes in
            do throws(DMAFault) { try endpoint.port.write(to: iova, from: bytes) } catch { fault = error }
        }
        for index in 0..<expected { endpoint.shadow[endpoint.bufferOffset(iova + UInt64(index))] = payload[index] }
        check(fault, expected: expected, length: payload.count, from: endpoint, at: iova, in: model, faultsBefore: faultsBefore, at: at, tally: &tally)
    }

    /// A DMA read: returns the device's own container's bytes as far as it maps them.
    static func read(_ length: Int, from endpoint: Model.Endpoint, at iova: UInt64, in model: Model, at: String, tally: inout Tally) {
        let expected = endpoint.mappedPrefix(iova, length)
        let faultsBefore = model.machine.core.faults.counters.total
        var received = [UInt8](repeating: 0, count: length)
        var fault: DMAFault?
        received.withUnsafeMutableBytes { bytes in
            do throws(DMAFault) { try endpoint.port.read(from: iova, into: bytes) } catch { fault = error }
        }
        let own = (0..<expected).map { endpoint.shadow[endpoint.bufferOffset(iova + UInt64($0))] }
        #expect(Array(received.prefix(expected)) == own, "\(at): read other bytes than its own container maps")
        check(fault, expected: expected, length: length, from: endpoint, at: iova, in: model, faultsBefore: faultsBefore, at: at, tally: &tally)
    }

    /// The outcome of one transfer, the fault log, and every buffer against its shadow.
    static func check(
        _ fault: DMAFault?, expected: Int, length: Int, from endpoint: Model.Endpoint, at iova: UInt64, in model: Model,
        faultsBefore: UInt64, at: String, tally: inout Tally
    ) {
        tally.transfers += 1
        if expected == length {
            tally.completed += 1
            #expect(fault == nil, "\(at): faulted although its container maps every byte: \(fault!)")
        } else {
            tally.faulted += 1
            let faultIOVA = iova + UInt64(expected)
            #expect(
                fault?.bytesCompleted == UInt64(expected) && fault?.iova == faultIOVA && fault?.reason == .iommu(.notPresent),
                "\(at): expected a not-present fault at 0x\(String(faultIOVA, radix: 16)) after \(expected) bytes, got \(fault.map(String.init(describing:)) ?? "success")")
            let recorded = model.machine.core.faults.recent.last
            #expect(
                model.machine.core.faults.counters.total == faultsBefore + 1 && recorded?.iova == faultIOVA
                    && recorded?.requesterID == endpoint.port.requesterID,
                "\(at): the IOMMU recorded \(recorded.map(String.init(describing:)) ?? "nothing")")
        }
        for other in model.endpoints where !other.bufferMatchesShadow {
            Issue.record("\(at): the buffer of \(other.device.container) (\(other.device.address)) changed where its own device did not write")
        }
    }

    /// Every device writes at every page mapped in every other container: it faults unless its
    /// own container maps the page too, and then it lands in its own buffer.
    static func sweep(_ model: Model, at machine: String, tally: inout Tally) throws {
        for endpoint in model.endpoints {
            for other in model.endpoints where other !== endpoint {
                for mapping in other.mappings {
                    for page in stride(from: mapping.iova, to: mapping.iova + mapping.size, by: Int(Model.page)) {
                        let ownsPage = endpoint.mapping(containing: page) != nil
                        if ownsPage { tally.sharedIOVAWrites += 1 } else { tally.foreignFaults += 1 }
                        let marker = [UInt8](repeating: UInt8(truncatingIfNeeded: page >> 12), count: 8)
                        transfer(
                            write: marker, from: endpoint, to: page, in: model,
                            at: "\(machine), sweep: \(endpoint.device.address) writes at 0x\(String(page, radix: 16)) mapped by \(other.device.container)",
                            tally: &tally)
                    }
                }
            }
        }
    }
}
