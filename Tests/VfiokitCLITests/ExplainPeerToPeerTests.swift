import Foundation
import PCIBus
import Testing

/// `vfiokit explain` names where a function's requests can turn to a peer before the IOMMU: the
/// downstream port without ACS, its verdict's rule, the peers and their groups (IG-11, IG-20).
@Suite("vfiokit explain: peer-to-peer routes")
struct ExplainPeerToPeerTests {
    @Test("below a downstream port without ACS: the port, the rule, the switch and the peers in other groups")
    func routeInText() throws {
        // The routes, peer by peer, are details: explain prints them under --verbose (compact
        // by default, issue 19 §7); the summary line is in both.
        #expect(try CLI.run(["explain", "04:00.0", "--machine", "switch-nonacs"]).stdout.contains("7 peer(s) outside this group are reached untranslated"))
        let result = try CLI.run(["explain", "04:00.0", "--machine", "switch-nonacs", "--verbose"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("Peer-to-peer"))
        #expect(
            result.stdout.contains(
                "via 0000:02:09.0, which does not redirect (ACS-04: Downstream Port has no ACS capability (ACS-07)), inside switch 0000:01:00.0"))
        #expect(result.stdout.contains("0000:03:00.0 [group 9]"))
        #expect(result.stdout.contains("7 peer(s) outside this group are reached untranslated"))
        #expect(result.stdout.contains("IG-20"))
    }

    @Test("--json: routes with port, upstream port, rule, peers with groups, and those outside the group")
    func routeInJSON() throws {
        let result = try CLI.run(["explain", "04:00.0", "--machine", "switch-nonacs", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let peerToPeer = try #require(try result.json()["peerToPeer"] as? [String: Any])
        let routes = try #require(peerToPeer["routes"] as? [[String: Any]])
        #expect(routes.count == 1)
        #expect(routes.first?["port"] as? String == "0000:02:09.0")
        #expect(routes.first?["upstreamPort"] as? String == "0000:01:00.0")
        #expect(routes.first?["rule"] as? String == "ACS-04")
        let peers = try #require(routes.first?["peers"] as? [[String: Any]])
        #expect(peers.contains { $0["address"] as? String == "0000:03:00.0" && $0["group"] as? Int == 9 })
        #expect((routes.first?["peersInOtherGroups"] as? [String])?.contains("0000:03:00.0") == true)
    }

    @Test("below a downstream port with ACS: no route, and the port that redirects is named", arguments: ["", "--json"])
    func noRoute(format: String) throws {
        let result = try CLI.run(["explain", "03:00.0", "--machine", "switch-nonacs"] + (format.isEmpty ? [] : [format]))
        #expect(result.status == 0, "\(result.stderr)")
        let summary: String
        if format.isEmpty {
            summary = result.stdout
        } else {
            let peerToPeer = try #require(try result.json()["peerToPeer"] as? [String: Any])
            #expect((peerToPeer["routes"] as? [Any])?.isEmpty == true)
            summary = try #require(peerToPeer["summary"] as? String)
        }
        #expect(summary.contains("none: every switch downstream port on the way up (0000:02:08.0) redirects peer requests upstream"))
    }

    @Test("on generated machines read back from a dump, explain --json reports exactly the routes of the grouping")
    func generatedMachines() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("vfiokit-p2p-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var checked = (routed: 0, unrouted: 0)
        for seed: UInt64 in [0x9292_0000, 0x9292_0003, 0x9292_0007, 0x9292_000b] {
            let machine = RandomTopology(seed: seed)
            let path = directory.appendingPathComponent("seed-\(seed).txt").path
            try DumpWriter.render(machine.functions).write(toFile: path, atomically: false, encoding: .utf8)
            let grouping = IsolationGrouping(topology: machine.topology)
            let addresses = grouping.topology.functions.map(\.address)
            let routed = addresses.last { !grouping.peerToPeerRoutes(from: $0).isEmpty }
            let unrouted = addresses.last { grouping.peerToPeerRoutes(from: $0).isEmpty }
            for address in [routed, unrouted].compactMap({ $0 }) {
                let result = try CLI.run(["explain", address.description, "--dump", path, "--json"])
                #expect(result.status == 0, "seed 0x\(String(seed, radix: 16)) \(address): \(result.stderr)")
                let peerToPeer = try #require(try result.json()["peerToPeer"] as? [String: Any])
                let routes = try #require(peerToPeer["routes"] as? [[String: Any]])
                let expected = grouping.peerToPeerRoutes(from: address)
                #expect(routes.map { $0["port"] as? String } == expected.map(\.port.description), "seed 0x\(String(seed, radix: 16)) \(address)")
                #expect(
                    routes.map { ($0["peers"] as? [[String: Any]])?.compactMap { $0["address"] as? String } }
                        == expected.map { $0.peers.map(\.description) },
                    "seed 0x\(String(seed, radix: 16)) \(address)")
                if expected.isEmpty { checked.unrouted += 1 } else { checked.routed += 1 }
            }
        }
        #expect(checked.routed >= 2 && checked.unrouted >= 2, "the seeds give functions with and without routes: \(checked)")
    }
}
