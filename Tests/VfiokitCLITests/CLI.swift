import Foundation

/// Runs the built `vfiokit` executable, or a sample driver (they sit beside the test bundle in
/// the build directory).
enum CLI {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static let buildDirectory = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()

    static let sharedFixtures = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/fixtures/real").path
    static let sharedAvailable = FileManager.default.fileExists(atPath: sharedFixtures + "/INDEX.md")

    /// A fresh path in the temporary directory; the caller removes whatever it puts there.
    static func temporaryPath(_ stem: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("vfiokit-cli-\(stem)-\(UUID().uuidString)").path
    }

    /// Writes `contents` to a fresh temporary file and returns its path.
    static func writeTemporary(_ contents: String) throws -> String {
        let path = temporaryPath("input")
        try contents.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String

        func json() throws -> [String: Any] {
            try JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any] ?? [:]
        }
    }

    /// Runs `program` with `arguments` in `directory` (default: the package root).
    static func run(_ arguments: [String], program: String = "vfiokit", in directory: URL = packageRoot) throws -> Result {
        let process = Process()
        process.executableURL = buildDirectory.appendingPathComponent(program)
        process.arguments = arguments
        process.currentDirectoryURL = directory
        let out = Pipe()
        // stderr goes to a file, not a second pipe: reading one pipe to its end while the child
        // fills the other (a sanitizer report easily passes the 64 KiB pipe buffer) deadlocks.
        let errPath = FileManager.default.temporaryDirectory.appendingPathComponent("vfiokit-cli-\(UUID().uuidString).stderr")
        _ = FileManager.default.createFile(atPath: errPath.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errPath) }
        let err = try FileHandle(forWritingTo: errPath)
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try err.close()
        let stderr = try Data(contentsOf: errPath)
        return Result(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }
}
