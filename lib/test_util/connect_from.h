// ConnectFrom: a loopback TCP connection from a chosen source address, for
// tests and benchmarks that play many clients (admission counts per
// address). Header-only; kj event loop of the calling thread.

#ifndef EDGESYNC_LIB_TEST_UTIL_CONNECT_FROM_H_
#define EDGESYNC_LIB_TEST_UTIL_CONNECT_FROM_H_

#include <arpa/inet.h>
#include <kj/async-io.h>
#include <kj/debug.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>

namespace edgesync::internal {

// A TCP connection to 127.0.0.1:`port` from the loopback address `source`
// (e.g. "127.0.0.7").
inline kj::Promise<kj::Own<kj::AsyncIoStream>> ConnectFrom(kj::AsyncIoContext& io,
                                                           const char* source, uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return KJ_EXCEPTION(FAILED, "socket() failed");
  sockaddr_in src{};
  src.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &src.sin_addr);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&src), sizeof src) != 0) {
    ::close(fd);
    return KJ_EXCEPTION(FAILED, "bind() to the source address failed", source);
  }
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
  return io.lowLevelProvider->wrapConnectingSocketFd(
      fd, reinterpret_cast<const sockaddr*>(&dst), sizeof dst,
      kj::LowLevelAsyncIoProvider::TAKE_OWNERSHIP | kj::LowLevelAsyncIoProvider::ALREADY_CLOEXEC |
          kj::LowLevelAsyncIoProvider::ALREADY_NONBLOCK);
}

}  // namespace edgesync::internal

#endif  // EDGESYNC_LIB_TEST_UTIL_CONNECT_FROM_H_
