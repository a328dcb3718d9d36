import CMMIOTrap
import Foundation
import Glibc

/// Starts a program with the preload library injected — what `vfiokit run` and the bench's C
/// client do: `LD_PRELOAD` names `libvfiokit-preload.so` (beside the running executable, or
/// `$VFIOKIT_PRELOAD`), `VFIOKIT_MACHINE` the machine (`vfiokit_start`'s form: a directory,
/// `dump:FILE` or `sysfs:DIR`), `VFIOKIT_BIND` the functions bound to vfio-pci and
/// `VFIOKIT_IOMMUFD_TEST=1` a kernel with `CONFIG_IOMMUFD_TEST` (the iommufd selftest mock).
public enum PreloadLauncher {
    /// The directory of the running executable.
    public static var executableDirectory: String {
        URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
            .deletingLastPathComponent().path
    }

    /// `$VFIOKIT_PRELOAD`, else `libvfiokit-preload.so` beside this executable; nil when neither exists.
    public static func library() -> String? {
        if let path = ProcessInfo.processInfo.environment["VFIOKIT_PRELOAD"], FileManager.default.fileExists(atPath: path) { return path }
        let beside = executableDirectory + "/libvfiokit-preload.so"
        return FileManager.default.fileExists(atPath: beside) ? beside : nil
    }

    /// This process's environment with the preload library and the machine added. A preload
    /// library built with a sanitizer (as this executable was) needs the sanitizer's runtime
    /// loaded first in the program, which has none of its own: the toolchain's shared one.
    public static func environment(library: String, machine: String, binding: [String], iommufdTest: Bool = false) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        let runtime = sanitizerRuntime()
        environment["LD_PRELOAD"] = (runtime + [library, environment["LD_PRELOAD"] ?? ""]).filter { !$0.isEmpty }
            .joined(separator: ":")
        if !runtime.isEmpty {
            // The program's own SIGSEGV/SIGBUS end it as on Linux, through the trap's chain, rather
            // than as a sanitizer's report of a crash that is not the simulation's.
            for key in ["TSAN_OPTIONS", "ASAN_OPTIONS"] {
                environment[key] = [environment[key], "handle_segv=0:handle_sigbus=0"].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ":")
            }
        }
        // The Swift runtime the library brings would install its crash backtracer in the program,
        // in front of the program's own SIGSEGV/SIGBUS behaviour: a C program crashes as a C program.
        if environment["SWIFT_BACKTRACE"] == nil { environment["SWIFT_BACKTRACE"] = "enable=no" }
        environment["VFIOKIT_MACHINE"] = machine
        environment["VFIOKIT_BIND"] = binding.joined(separator: ",")
        if iommufdTest { environment["VFIOKIT_IOMMUFD_TEST"] = "1" } else { environment["VFIOKIT_IOMMUFD_TEST"] = nil }
        return environment
    }

    /// The shared runtime of the sanitizer this build uses (the preload library was built with
    /// it too), from the toolchain beside the Swift runtime — for ThreadSanitizer with the
    /// libdispatch it intercepts; none without a sanitizer.
    static func sanitizerRuntime() -> [String] {
        guard let name = vfiokit_sanitizer().map({ String(cString: $0) }) else { return [] }
        // libswiftCore.so is in <toolchain>/usr/lib/swift/linux; clang's runtimes in <toolchain>/usr/lib/clang/N/lib/linux.
        // /proc files have no size, so they are read as a stream.
        guard let maps = try? FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/self/maps")).readToEnd(),
            let line = String(decoding: maps, as: UTF8.self).split(separator: "\n").first(where: { $0.hasSuffix("/libswiftCore.so") }),
            let slash = line.firstIndex(of: "/")
        else { return [] }
        let swiftLibraries = URL(fileURLWithPath: String(line[slash...])).deletingLastPathComponent()
        let lib = URL(fileURLWithPath: String(line[slash...])).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let clang = lib.appendingPathComponent("clang")
        for version in (try? FileManager.default.contentsOfDirectory(atPath: clang.path)) ?? [] {
            let runtime = clang.path + "/\(version)/lib/linux/libclang_rt.\(name)-x86_64.so"
            guard FileManager.default.fileExists(atPath: runtime) else { continue }
            return name == "tsan" ? [runtime, swiftLibraries.path + "/libdispatch.so", swiftLibraries.path + "/libBlocksRuntime.so"] : [runtime]
        }
        return []
    }

    /// The outcome of a program that was started (or could not be).
    public struct Outcome: Sendable {
        /// The exit status, 128+N for signal N, 127 when the program was not found, 126 when it
        /// could not be run.
        public let status: Int32
        /// Its standard output, when captured.
        public let output: String
        /// Why it could not be started, if it was not.
        public let failure: String?
    }

    /// Runs `arguments` (looked up in PATH) with `environment` and waits; with `captureOutput`
    /// its standard output is returned instead of shared.
    public static func run(_ arguments: [String], environment: [String: String], captureOutput: Bool = false) -> Outcome {
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var pipeEnds: [Int32] = [-1, -1]
        if captureOutput {
            guard pipe(&pipeEnds) == 0 else { return Outcome(status: 126, output: "", failure: "pipe: \(String(cString: strerror(errno)))") }
            posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 1)
            posix_spawn_file_actions_addclose(&actions, pipeEnds[0])
        }
        // The program gets default SIGINT/SIGQUIT even when the caller ignores them while it waits.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        sigaddset(&defaults, SIGINT)
        sigaddset(&defaults, SIGQUIT)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF))
        var pid: pid_t = 0
        let spawned = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, envp)
        if captureOutput { Glibc.close(pipeEnds[1]) }
        guard spawned == 0 else {
            if captureOutput { Glibc.close(pipeEnds[0]) }
            return Outcome(status: spawned == ENOENT ? 127 : 126, output: "", failure: "\(arguments[0]): \(String(cString: strerror(spawned)))")
        }
        var output = [UInt8]()
        if captureOutput {
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let count = Glibc.read(pipeEnds[0], &chunk, chunk.count)
                if count > 0 { output += chunk[0..<count] } else if count == 0 || errno != EINTR { break }
            }
            Glibc.close(pipeEnds[0])
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let signalNumber = status & 0x7f
        return Outcome(status: signalNumber == 0 ? (status >> 8) & 0xff : 128 + signalNumber, output: String(decoding: output, as: UTF8.self), failure: nil)
    }
}
