import Testing

/// The sample drivers end to end: each verifies its data, then shows a contained fault (VST-13).
@Suite("sample drivers end to end")
struct SampleDriverTests {
    @Test(
        "each sample copies and verifies, then meets an IOMMU fault at an unmapped IOVA",
        arguments: [
            ("memcpy-driver", "0000:5f:00.0", "data verified"), ("nic-loopback-driver", "0000:60:00.0", "data verified"),
            ("nvme-driver", "0000:5e:00.0", "data verified"),
        ])
    func sample(_ program: String, _ device: String, _ verified: String) throws {
        let result = try CLI.run([], program: program)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix("probe: \(device) in IOMMU group"))
        #expect(result.stdout.contains(verified))
        #expect(result.stdout.contains("not-present"))
        #expect(result.stdout.contains("eventfd reads 1"))
    }

    @Test("a sample pointed at a device its driver does not handle says so and fails")
    func wrongDevice() throws {
        let result = try CLI.run(["--device", "0000:60:00.0"], program: "memcpy-driver")
        #expect(result.status == 1)
        #expect(result.stdout.contains("is not a device memcpy-engine handles"))
        let usage = try CLI.run(["--device"], program: "nvme-driver")
        #expect(usage.status == 64)
    }
}
