import Machine
import UserMemory
import DeviceModels
import Foundation
import PCIBus
import VFIO

/// `devices/default` as `SimulatedMachine.load(machine: "default")` builds it, but with the dump
/// parsed once per process: every input gets a fresh machine (new IOMMU core, process memory,
/// device models, fds), so runs are deterministic and nothing leaks from one input to the next.
///
/// The machine is found through `VFIOKIT_DEVICES` when set, else in the `devices/` directory of
/// the repository this file was compiled from.
enum DefaultMachine {
    /// The default machine's directory.
    static let directory: String = {
        if let devices = ProcessInfo.processInfo.environment["VFIOKIT_DEVICES"] { return devices + "/default" }
        // #filePath is <repo>/Sources/FuzzTargets/Support/DefaultMachine.swift.
        var root = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { root.deleteLastPathComponent() }
        return root.appendingPathComponent("devices/default").path
    }()

    private struct Fixture: Sendable {
        let base: BusSnapshot
        let requests: [SimulatedMachine.VirtualDeviceRequest]
    }

    private static let fixture: Fixture = {
        do {
            let machine = try FixtureMachine.load(directory: directory)
            return Fixture(
                base: try BusSnapshot.load(.machine(machine), options: .init(lookUpNames: false)),
                requests: try SimulatedMachine.declaredDevices(of: machine))
        } catch {
            fatalError("fuzz harness: cannot load the default machine from \(directory): \(error) (set VFIOKIT_DEVICES)")
        }
    }()

    /// Loads the fixture now, so a missing machine stops the run before the first input.
    static func prepare() { _ = fixture }

    /// A fresh machine with the manifest's virtual devices, pinning from `process`; the functions
    /// in `binding` bound to vfio-pci (as `vfiokit run --bind` does).
    static func make(process: ProcessMemory = ProcessMemory(), binding: [PCIAddress] = []) -> SimulatedMachine {
        do throws(MachineError) {
            return try SimulatedMachine(base: fixture.base, requests: fixture.requests, binding: binding, process: process)
        } catch {
            fatalError("fuzz harness: cannot build the default machine: \(error)")
        }
    }

    /// The address of the virtual device of `model` (a `ModelCatalog` name).
    static func address(of model: String) -> PCIAddress {
        guard let request = fixture.requests.first(where: { $0.model == model }) else {
            fatalError("fuzz harness: the default machine has no \(model)")
        }
        return request.address
    }
}
