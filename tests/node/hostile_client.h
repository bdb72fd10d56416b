// File: tests/node/hostile_client.h
//
// The hostile side of tests/node/hostile_test.cc: raw kj sockets and the
// secure channel's own Handshake, run on a thread of their own with their
// own kj event loop (never the node's). TapStream sits between a channel
// and its socket to record what the client sent (for replays), flip a bit
// in a later write, or write raw bytes behind the channel's back.

#ifndef EDGESYNC_TESTS_NODE_HOSTILE_CLIENT_H_
#define EDGESYNC_TESTS_NODE_HOSTILE_CLIENT_H_

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <kj/async-io.h>
#include <kj/debug.h>
#include <kj/timer.h>
#include <kj/vector.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "lib/test_util/connect_from.h"
#include "tests/node/node_test_util.h"
#include "transport/secure_channel.h"
#include "transport/signing_key.h"

namespace edgesync::testing {

class TrustAll final : public transport::PeerTrust {
 public:
  bool IsTrustedPeer(const crdt::AuthorKey&) override { return true; }
};

using internal::ConnectFrom;

// Runs `fn` on a new thread with its own kj event loop, and waits for it.
inline void OnOwnLoop(const std::function<void(kj::AsyncIoContext&)>& fn) {
  std::thread t([&fn] {
    try {
      kj::AsyncIoContext io = kj::setupAsyncIo();
      fn(io);
    } catch (const kj::Exception& e) {
      ADD_FAILURE() << "hostile client: " << e.getDescription().cStr();
    }
  });
  t.join();
}

// Turns the loop until `done` holds or `ms` pass (the loop keeps running
// its I/O meanwhile).
template <typename Fn>
bool WaitOnLoop(kj::AsyncIoContext& io, Fn done, uint64_t ms) {
  kj::Timer& timer = io.provider->getTimer();
  const kj::TimePoint until = timer.now() + static_cast<int64_t>(ms) * kj::MILLISECONDS;
  while (timer.now() < until) {
    if (done()) return true;
    timer.afterDelay(5 * kj::MILLISECONDS).wait(io.waitScope);
  }
  return done();
}

// A pass-through stream that records the bytes written through it. (KJ's
// stream interfaces trip -Wnon-virtual-dtor; kj::Own deletes it by its
// real type.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class TapStream final : public kj::AsyncIoStream {
 public:
  explicit TapStream(kj::Own<kj::AsyncIoStream> inner) : inner_(kj::mv(inner)) {}

  kj::Promise<size_t> tryRead(void* buffer, size_t min_bytes, size_t max_bytes) override {
    return inner_->tryRead(buffer, min_bytes, max_bytes);
  }
  kj::Promise<void> write(const void* buffer, size_t size) override {
    kj::Array<kj::byte> copy = kj::heapArray<kj::byte>(size);
    std::memcpy(copy.begin(), buffer, size);
    ++writes_;
    if (flip_write_.has_value() && *flip_write_ == writes_ && flip_offset_ < size) {
      copy[flip_offset_] ^= 0x01;
      flip_write_.reset();
      flipped_ = true;
    }
    recorded_.append(reinterpret_cast<const char*>(copy.begin()), copy.size());
    kj::Promise<void> written = inner_->write(copy.begin(), copy.size());
    return written.attach(kj::mv(copy));
  }
  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
    std::string all;
    for (const auto& p : pieces) all.append(reinterpret_cast<const char*>(p.begin()), p.size());
    return write(all.data(), all.size());
  }
  kj::Promise<void> whenWriteDisconnected() override { return inner_->whenWriteDisconnected(); }
  void shutdownWrite() override { inner_->shutdownWrite(); }
  void abortRead() override { inner_->abortRead(); }

  // Flips the lowest bit of byte `offset` of the next write.
  void FlipBitInNextWrite(size_t offset) {
    flip_write_ = writes_ + 1;
    flip_offset_ = offset;
  }
  bool flipped() const { return flipped_; }
  // Everything written so far (the client's side of the session).
  const std::string& recorded() const { return recorded_; }
  // Writes `bytes` straight to the socket, bypassing the channel.
  kj::Promise<void> WriteRaw(std::string bytes) {
    auto owned = kj::heap<std::string>(std::move(bytes));
    kj::Promise<void> written = inner_->write(owned->data(), owned->size());
    return written.attach(kj::mv(owned));
  }

 private:
  kj::Own<kj::AsyncIoStream> inner_;
  uint64_t writes_ = 0;
  std::optional<uint64_t> flip_write_;
  size_t flip_offset_ = 0;
  bool flipped_ = false;
  std::string recorded_;
};
#pragma GCC diagnostic pop

// A channel dialled from `source` to 127.0.0.1:`port` through a TapStream
// (borrowed pointer: valid while `channel` lives).
struct TappedChannel {
  absl::Status status;
  kj::Own<transport::SecureChannel> channel;
  TapStream* tap = nullptr;
};

inline TappedChannel DialTapped(kj::AsyncIoContext& io, const char* source, uint16_t port,
                                const transport::SigningKey& key, transport::PeerTrust& trust,
                                const transport::ChannelOptions& options = {}) {
  TappedChannel out;
  kj::Own<kj::AsyncIoStream> stream = ConnectFrom(io, source, port).wait(io.waitScope);
  auto tap = kj::heap<TapStream>(kj::mv(stream));
  out.tap = tap.get();
  absl::StatusOr<kj::Own<transport::SecureChannel>> ch =
      transport::Handshake(kj::mv(tap), transport::ChannelRole::kDialer, key, trust,
                           io.provider->getTimer(), options)
          .wait(io.waitScope);
  if (!ch.ok()) {
    out.status = ch.status();
    out.tap = nullptr;
    return out;
  }
  out.channel = *std::move(ch);
  return out;
}

// Receives (and drops) frames until the channel ends; its status, or
// kDeadlineExceeded if it is still open after `ms`. (The status travels
// through an out-parameter: a kj::Promise<absl::Status> trips gcc's
// -Wmaybe-uninitialized under -O2 with sanitizers.)
inline kj::Promise<void> DrainUntilClosed(transport::SecureChannel& ch, absl::Status* ended) {
  return ch.Receive().then([&ch, ended](absl::StatusOr<std::string> f) -> kj::Promise<void> {
    if (!f.ok()) {
      *ended = f.status();
      return kj::READY_NOW;
    }
    return DrainUntilClosed(ch, ended);
  });
}
inline absl::Status WaitClosed(kj::AsyncIoContext& io, transport::SecureChannel& ch, uint64_t ms) {
  absl::Status ended;  // stays OK until Receive() fails (it never fails with OK)
  kj::Promise<void> deadline =
      io.provider->getTimer().afterDelay(static_cast<int64_t>(ms) * kj::MILLISECONDS);
  DrainUntilClosed(ch, &ended).exclusiveJoin(kj::mv(deadline)).wait(io.waitScope);
  return ended.ok() ? absl::DeadlineExceededError("the channel is still open") : ended;
}

// Reads a raw stream to its end. `total` counts the bytes read.
struct Sink {
  std::array<kj::byte, 4096> buffer{};
  size_t total = 0;
};
inline kj::Promise<void> ReadToEnd(kj::AsyncIoStream& s, Sink& sink) {
  return s.tryRead(sink.buffer.data(), 1, sink.buffer.size())
      .then([&s, &sink](size_t n) -> kj::Promise<void> {
        if (n == 0) return kj::READY_NOW;
        sink.total += n;
        return ReadToEnd(s, sink);
      });
}
// True if the peer closed (EOF or reset) `s` within `ms`.
inline bool ClosedWithin(kj::AsyncIoContext& io, kj::AsyncIoStream& s, uint64_t ms,
                         size_t* read_bytes = nullptr) {
  Sink sink;
  kj::Promise<bool> closed =
      ReadToEnd(s, sink).then([] { return true; }, [](kj::Exception&&) { return true; });
  kj::Promise<bool> deadline =
      io.provider->getTimer().afterDelay(static_cast<int64_t>(ms) * kj::MILLISECONDS).then([] {
        return false;
      });
  const bool out = closed.exclusiveJoin(kj::mv(deadline)).wait(io.waitScope);
  if (read_bytes != nullptr) *read_bytes = sink.total;
  return out;
}

inline std::string Be32(uint32_t v) {
  std::string out(4, '\0');
  out[0] = static_cast<char>(v >> 24);
  out[1] = static_cast<char>(v >> 16);
  out[2] = static_cast<char>(v >> 8);
  out[3] = static_cast<char>(v);
  return out;
}

}  // namespace edgesync::testing

#endif  // EDGESYNC_TESTS_NODE_HOSTILE_CLIENT_H_
