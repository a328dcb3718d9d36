import KernelRules
import VFIO

/// `pread`/`pwrite` on a device fd as an unmodified program makes them (the preload library's
/// entry points): the buffer is a user address, reached only as the kernel reaches it. The region
/// access goes through a kernel-side bounce buffer, `bounceSize` bytes at a time, and the bytes
/// cross with `copy_to_user`/`copy_from_user` (`vfio_pci_bar_rw`, `vfio_pci_config_rw`): a buffer
/// the program cannot read or write is `EFAULT`, never a fault in the simulation.
extension VFIOSystem {
    static let bounceSize = 1 << 16

    /// `pread(fd, buffer, count, offset)` with `buffer` a user address.
    public func pread(_ fd: Int32, userBuffer address: UInt, count: Int, _ offset: UInt64) -> Int {
        regionIO(fd, offset, count) { (device, region, at) throws(VFIOError) in
            try Self.inChunks(count) { (done, chunk) throws(VFIOError) -> Int in
                try withUnsafeTemporaryAllocation(byteCount: chunk, alignment: 8) { (bounce) throws(VFIOError) -> Int in
                    let read = try device.read(region, offset: at + UInt64(done), into: bounce)
                    try Self.user(address, done, device, "pread").copyOut(raw: UnsafeRawBufferPointer(rebasing: bounce[..<read]))
                    return read
                }
            }
        }
    }

    /// `pwrite(fd, buffer, count, offset)` with `buffer` a user address.
    public func pwrite(_ fd: Int32, userBuffer address: UInt, count: Int, _ offset: UInt64) -> Int {
        regionIO(fd, offset, count) { (device, region, at) throws(VFIOError) in
            try Self.inChunks(count) { (done, chunk) throws(VFIOError) -> Int in
                try withUnsafeTemporaryAllocation(byteCount: chunk, alignment: 8) { (bounce) throws(VFIOError) -> Int in
                    try Self.user(address, done, device, "pwrite").copyIn(raw: bounce)
                    return try device.write(region, offset: at + UInt64(done), from: UnsafeRawBufferPointer(bounce))
                }
            }
        }
    }

    /// Runs `transfer(done, chunk)` over `count` bytes, `bounceSize` at a time, until it moves
    /// fewer bytes than asked (a BAR's end); the bytes moved.
    private static func inChunks(_ count: Int, _ transfer: (Int, Int) throws(VFIOError) -> Int) throws(VFIOError) -> Int {
        var done = 0
        while done < count {
            let chunk = min(count - done, bounceSize)
            let moved = try transfer(done, chunk)
            done += moved
            if moved < chunk { break }
        }
        return done
    }

    private static func user(_ address: UInt, _ done: Int, _ device: VFIODevice, _ call: String) -> UserPointer {
        UserPointer(UInt64(address) &+ UInt64(done), rule: .VPCI_72, object: device, ioctl: call)
    }
}
