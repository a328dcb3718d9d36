import Glibc
import KernelRules
import SystemPackage
import VFIO

/// An object behind an fd that takes ioctls with raw `<linux/vfio.h>` arguments
/// (`file_operations.unlocked_ioctl`): the container, group and device fds.
public protocol IOCTLTarget: Sendable {
    /// The ioctl's result, or the `VFIOError` (errno, rule, message) that explains its failure.
    func ioctlThrowing(request: UInt, argument: UInt) throws(VFIOError) -> Int32
}

extension IOCTLTarget {
    /// `ioctl(fd, request, argument)`: a non-negative result, or -1 with `errno` set.
    public func ioctl(request: UInt, argument: UInt) -> Int32 {
        syscallReturn(ioctlResult(request: request, argument: argument), failure: -1)
    }

    /// `ioctl` with the `VFIOError` that explains a failure.
    public func ioctlResult(request: UInt, argument: UInt) -> Result<Int32, VFIOError> {
        Result { () throws(VFIOError) in try ioctlThrowing(request: request, argument: argument) }
    }
}

/// The system-call convention every call of the boundary returns by: the result, or `failure`
/// (-1, `MAP_FAILED`) with `errno` set to the error's.
func syscallReturn<Value>(_ result: Result<Value, VFIOError>, failure: Value) -> Value {
    switch result {
    case .success(let value): return value
    case .failure(let error): return syscallFailure(error, failure)
    }
}

/// `failure` with `errno` set to the error's.
func syscallFailure<Value>(_ error: VFIOError, _ failure: Value) -> Value {
    Glibc.errno = error.errno.rawValue
    return failure
}
