import Glibc

/// The ioctl calling convention: a non-negative result, or -1 with `errno` set.
func ioctlReturn(_ result: Result<Int32, VFIOError>) -> Int32 {
    switch result {
    case .success(let value): return value
    case .failure(let error):
        Glibc.errno = error.errno.rawValue
        return -1
    }
}
