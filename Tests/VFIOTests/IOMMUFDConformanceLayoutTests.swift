import Foundation
import Testing

/// The hand-written layouts of `IOMMUFDConformanceStructs.swift` against the kernel's own
/// `include/uapi/linux/iommufd.h` and `vfio.h` in `../shared/kernel`: a C program compiled with
/// them prints every field's offset and width, every struct's size and every request number.
@Suite("IOMMUFD struct layouts against the kernel's uapi headers")
struct IOMMUFDConformanceLayoutTests {
    static let headers = ConformanceCoverageTests.repository.deletingLastPathComponent().appendingPathComponent("shared/kernel/include/uapi").path
    static let compiler = "/usr/bin/cc"

    static let requests: [(String, UInt)] = [
        ("IOMMU_DESTROY", IOMMUFDStruct.destroyRequest), ("IOMMU_IOAS_ALLOC", IOMMUFDStruct.ioasAllocRequest),
        ("IOMMU_IOAS_ALLOW_IOVAS", IOMMUFDStruct.allowIOVAsRequest), ("IOMMU_IOAS_COPY", IOMMUFDStruct.copyRequest),
        ("IOMMU_IOAS_IOVA_RANGES", IOMMUFDStruct.iovaRangesRequest), ("IOMMU_IOAS_MAP", IOMMUFDStruct.mapRequest), ("IOMMU_IOAS_UNMAP", IOMMUFDStruct.unmapRequest),
        ("IOMMU_OPTION", IOMMUFDStruct.optionRequest), ("IOMMU_VFIO_IOAS", IOMMUFDStruct.vfioIOASRequest), ("IOMMU_HWPT_ALLOC", IOMMUFDStruct.hwptAllocRequest),
        ("IOMMU_GET_HW_INFO", IOMMUFDStruct.hwInfoRequest), ("IOMMU_HWPT_SET_DIRTY_TRACKING", IOMMUFDStruct.setDirtyTrackingRequest),
        ("IOMMU_HWPT_GET_DIRTY_BITMAP", IOMMUFDStruct.getDirtyBitmapRequest), ("IOMMU_HWPT_INVALIDATE", IOMMUFDStruct.invalidateRequest),
        ("IOMMU_FAULT_QUEUE_ALLOC", IOMMUFDStruct.faultQueueAllocRequest), ("IOMMU_IOAS_MAP_FILE", IOMMUFDStruct.mapFileRequest),
        ("IOMMU_VIOMMU_ALLOC", IOMMUFDStruct.viommuAllocRequest), ("IOMMU_VDEVICE_ALLOC", IOMMUFDStruct.vdeviceAllocRequest),
        ("IOMMU_IOAS_CHANGE_PROCESS", IOMMUFDStruct.changeProcessRequest), ("IOMMU_VEVENTQ_ALLOC", IOMMUFDStruct.veventqAllocRequest),
        ("IOMMU_HW_QUEUE_ALLOC", IOMMUFDStruct.hwQueueAllocRequest), ("VFIO_DEVICE_BIND_IOMMUFD", IOMMUFDStruct.bindRequest),
        ("VFIO_DEVICE_ATTACH_IOMMUFD_PT", IOMMUFDStruct.attachRequest), ("VFIO_DEVICE_DETACH_IOMMUFD_PT", IOMMUFDStruct.detachRequest),
        ("VFIO_IOMMU_DIRTY_PAGES", VFIORequestNumbers.dirtyPages), ("VFIO_GROUP_GET_STATUS", VFIORequestNumbers.groupGetStatus),
    ]

    /// `name offset width` per field, `name size` per struct, `name number` per request, as the
    /// hand-written tables say.
    static var expected: [String] {
        IOMMUFDStruct.all.flatMap { layout in
            ["\(layout.name) \(layout.size)"] + layout.fields.map { "\(layout.name).\($0.name) \($0.offset) \($0.width)" }
        } + requests.map { "\($0.0) \($0.1)" }
    }

    /// The C program printing the same lines from the kernel's headers.
    static var program: String {
        var lines = ["#include <stddef.h>", "#include <stdio.h>", "#include <linux/iommufd.h>", "#include <linux/vfio.h>", "int main(void) {"]
        for layout in IOMMUFDStruct.all {
            lines.append("printf(\"\(layout.name) %zu\\n\", sizeof(struct \(layout.name)));")
            for field in layout.fields {
                lines.append(
                    "printf(\"\(layout.name).\(field.name) %zu %zu\\n\", offsetof(struct \(layout.name), \(field.name)), sizeof(((struct \(layout.name) *)0)->\(field.name)));")
            }
        }
        for (name, _) in requests { lines.append("printf(\"\(name) %lu\\n\", (unsigned long)\(name));") }
        return (lines + ["return 0;", "}"]).joined(separator: "\n")
    }

    @Test(
        "every field offset and width, struct size and request number matches <linux/iommufd.h> and <linux/vfio.h>",
        .enabled(
            if: FileManager.default.fileExists(atPath: headers + "/linux/iommufd.h") && FileManager.default.isExecutableFile(atPath: compiler),
            "../shared/kernel's uapi headers or cc are absent"))
    func layoutsMatchTheKernelHeaders() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("iommufd-layout-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = directory.appendingPathComponent("layout.c"), binary = directory.appendingPathComponent("layout")
        try Self.program.write(to: source, atomically: true, encoding: .utf8)
        let compile = Process()
        compile.executableURL = URL(fileURLWithPath: Self.compiler)
        // `headers_install` strips `__user` from the uapi headers; these are the tree's own copies.
        compile.arguments = ["-D__user=", "-I", Self.headers, "-o", binary.path, source.path]
        try compile.run()
        compile.waitUntilExit()
        try #require(compile.terminationStatus == 0, "cc could not build the layout program against \(Self.headers)")
        let run = Process()
        let output = Pipe()
        run.executableURL = binary
        run.standardOutput = output
        try run.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        run.waitUntilExit()
        let actual = text.split(separator: "\n").map(String.init)
        #expect(actual.count == Self.expected.count)
        for (mine, kernel) in zip(Self.expected, actual) { #expect(mine == kernel, "hand layout \(mine) vs kernel header \(kernel)") }
    }
}
