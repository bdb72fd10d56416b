// File: transport/secure_channel.cc
//
// Handshake and framing of the secure channel; docs/transport.md is the
// specification. Everything here runs on one kj event loop. Rules kept
// throughout:
// - every read has an exact, bounded size, checked before any allocation;
// - writes on the stream are strictly sequential (one pending at a time);
// - kj exceptions become statuses at the two edges (Handshake's promise and
//   the channel's promises); nothing here throws on purpose;
// - secrets (ephemeral X25519 key, session keys, secretstream states) are
//   wiped when their owner is destroyed.

// GCC 12 at -O3 reports -Wmaybe-uninitialized inside kj's ExceptionOr<absl::StatusOr<std::string>>
// (a false positive on the union members of std::string); it is not ours to fix.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "transport/secure_channel.h"

#include <sodium.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <deque>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "crdt/check.h"

namespace edgesync::transport {
namespace {

using SecretStream = crypto_secretstream_xchacha20poly1305_state;
using HandshakeResult = absl::StatusOr<kj::Own<SecureChannel>>;
using FrameResult = absl::StatusOr<std::string>;

constexpr size_t kAbytes = crypto_secretstream_xchacha20poly1305_ABYTES;
constexpr size_t kStreamHeaderBytes = crypto_secretstream_xchacha20poly1305_HEADERBYTES;
constexpr size_t kEphemeralBytes = crypto_kx_PUBLICKEYBYTES;
constexpr size_t kSessionKeyBytes = crypto_kx_SESSIONKEYBYTES;
constexpr size_t kLengthBytes = 4;
constexpr size_t kHelloPrefixBytes = 4 + 2;  // magic, first version field
constexpr size_t kHelloBytes = kHelloPrefixBytes + 2 + kEphemeralBytes;
constexpr size_t kStaticCipherBytes = crdt::kAuthorKeyBytes + kAbytes;
constexpr size_t kSignatureCipherBytes = kSignatureBytes + kAbytes;
// Frames are coalesced into writes of about this size.
constexpr size_t kWriteBatchBytes = 256u << 10;

static_assert(kFrameOverheadBytes == kLengthBytes + kAbytes);
static_assert(kHelloBytes == kChannelHelloBytes);
static_assert(crypto_kx_SESSIONKEYBYTES == crypto_secretstream_xchacha20poly1305_KEYBYTES);
static_assert(crdt::kAuthorKeyBytes == crypto_sign_PUBLICKEYBYTES);

kj::Duration Ms(uint64_t ms) { return static_cast<int64_t>(ms) * kj::MILLISECONDS; }

uint32_t LoadBe32(const kj::byte* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

void StoreBe32(kj::byte* p, uint32_t v) {
  p[0] = static_cast<kj::byte>(v >> 24);
  p[1] = static_cast<kj::byte>(v >> 16);
  p[2] = static_cast<kj::byte>(v >> 8);
  p[3] = static_cast<kj::byte>(v);
}

absl::Status StatusFromKj(const kj::Exception& e, absl::string_view what) {
  const kj::StringPtr d = e.getDescription();
  std::string message = absl::StrCat(what, ": ", absl::string_view(d.cStr(), d.size()));
  switch (e.getType()) {
    case kj::Exception::Type::DISCONNECTED:
    case kj::Exception::Type::OVERLOADED:
      return absl::UnavailableError(message);
    default:
      return absl::InternalError(message);
  }
}

// Writes one frame (length, then the secretstream message) at `out`, which
// has room for plaintext.size() + kFrameOverheadBytes bytes.
void SealFrame(SecretStream& push, absl::string_view plaintext, unsigned char tag, kj::byte* out) {
  StoreBe32(out, static_cast<uint32_t>(plaintext.size() + kAbytes));
  unsigned long long cipher_bytes = 0;
  crypto_secretstream_xchacha20poly1305_push(
      &push, out + kLengthBytes, &cipher_bytes,
      reinterpret_cast<const unsigned char*>(plaintext.data()), plaintext.size(), nullptr, 0, tag);
}

std::string KeyPrefix(const crdt::AuthorKey& key) { return key.Hex().substr(0, 16); }

// ---------------------------------------------------------------------------
// The established channel.

class ChannelImpl final : public SecureChannel {
 public:
  ChannelImpl(kj::Own<kj::AsyncIoStream> stream, const SecretStream& push, const SecretStream& pull,
              const crdt::AuthorKey& peer, kj::Timer& timer, const ChannelOptions& options)
      : stream_(kj::mv(stream)),
        timer_(timer),
        options_(options),
        peer_(peer),
        push_(push),
        pull_(pull),
        last_rekey_(timer.now()) {}

  ~ChannelImpl() noexcept override {
    // Cancel the caller's promises first: they point into this object.
    canceler_.cancel("secure channel destroyed");
    sodium_memzero(&push_, sizeof push_);
    sodium_memzero(&pull_, sizeof pull_);
  }

  const crdt::AuthorKey& peer() const override { return peer_; }
  size_t queued_bytes() const override { return queued_bytes_; }
  ChannelStats stats() const override { return stats_; }

  absl::Status Send(std::string frame) override {
    if (!failure_.ok()) {
      return absl::UnavailableError(absl::StrCat("channel is closed: ", failure_.message()));
    }
    if (closing_) return absl::FailedPreconditionError("Send() after Close()");
    if (frame.size() > options_.frame_bytes_max) {
      return absl::InvalidArgumentError(absl::StrCat("frame of ", frame.size(),
                                                     " bytes is over frame_bytes_max (",
                                                     options_.frame_bytes_max, ")"));
    }
    const size_t cost = frame.size() + kFrameOverheadBytes;
    if (queued_bytes_ + cost > options_.send_queue_bytes_max) {
      return absl::ResourceExhaustedError(absl::StrCat("send queue full: ", queued_bytes_,
                                                       " bytes queued, limit ",
                                                       options_.send_queue_bytes_max));
    }
    queue_.push_back(QueuedFrame{std::move(frame), false});
    queued_bytes_ += cost;
    StartWriting();
    return absl::OkStatus();
  }

  kj::Promise<FrameResult> Receive() override {
    if (!failure_.ok()) return FrameResult(failure_);
    if (peer_closed_) return FrameResult(absl::UnavailableError("peer closed the channel"));
    if (receiving_) return FrameResult(absl::FailedPreconditionError("a Receive() is pending"));
    receiving_ = true;

    const uint64_t idle_ms = options_.idle_timeout_ms;
    kj::Promise<FrameResult> frame = kj::evalNow([this] { return ReadFrame(); });
    kj::Promise<FrameResult> idle = timer_.afterDelay(Ms(idle_ms)).then([idle_ms]() {
      return FrameResult(
          absl::DeadlineExceededError(absl::StrCat("no frame received for ", idle_ms, " ms")));
    });
    auto abort = kj::newPromiseAndFulfiller<FrameResult>();
    receive_abort_ = kj::mv(abort.fulfiller);

    kj::Promise<FrameResult> done =
        frame.exclusiveJoin(kj::mv(idle))
            .exclusiveJoin(kj::mv(abort.promise))
            .catch_([](kj::Exception&& e) { return FrameResult(StatusFromKj(e, "receive")); })
            .then([this](FrameResult r) {
              receiving_ = false;
              receive_abort_ = nullptr;
              if (!failure_.ok()) return FrameResult(failure_);
              if (!r.ok()) {
                if (peer_closed_) return r;  // the peer's final frame: only its direction ends
                Fail(r.status(), /*cancel_writes=*/true);
              }
              return r;
            })
            .attach(kj::heap<ReceiveGuard>(*this));
    return canceler_.wrap(kj::mv(done)).catch_([](kj::Exception&&) {
      return FrameResult(absl::UnavailableError("secure channel destroyed"));
    });
  }

  kj::Promise<void> Close() override {
    if (closing_ || !failure_.ok()) return kj::READY_NOW;
    closing_ = true;
    auto drained = kj::newPromiseAndFulfiller<void>();
    drained_ = kj::mv(drained.fulfiller);
    queue_.push_back(QueuedFrame{std::string(), true});
    queued_bytes_ += kFrameOverheadBytes;
    StartWriting();
    const uint64_t ms = options_.close_timeout_ms;
    kj::Promise<void> deadline = timer_.afterDelay(Ms(ms)).then([this, ms] {
      Fail(absl::DeadlineExceededError(
               absl::StrCat("Close() could not flush queued frames within ", ms, " ms")),
           /*cancel_writes=*/true);
    });
    return canceler_.wrap(drained.promise.exclusiveJoin(kj::mv(deadline)))
        .catch_([](kj::Exception&&) {});
  }

 private:
  struct QueuedFrame {
    std::string plaintext;
    bool final = false;
  };

  // Attached to a pending Receive(): if that promise is dropped before it
  // resolves, the stream may be mid-frame, so the channel fails.
  struct ReceiveGuard {
    explicit ReceiveGuard(ChannelImpl& c) : channel(c) {}
    ~ReceiveGuard() {
      if (channel.receiving_) {
        channel.receiving_ = false;
        channel.receive_abort_ = nullptr;
        channel.Fail(absl::CancelledError("a pending Receive() was dropped"),
                     /*cancel_writes=*/true);
      }
    }
    ChannelImpl& channel;
  };

  kj::Promise<FrameResult> ReadFrame() {
    return stream_->tryRead(length_.data(), kLengthBytes, kLengthBytes)
        .then([this](size_t n) -> kj::Promise<FrameResult> {
          if (n == 0) {
            return FrameResult(absl::UnavailableError("connection closed without a final frame"));
          }
          if (n < kLengthBytes) {
            return FrameResult(absl::UnavailableError("connection ended inside a frame header"));
          }
          const uint32_t length = LoadBe32(length_.data());
          const size_t length_max = size_t{options_.frame_bytes_max} + kAbytes;
          // Checked before allocating: the length is the peer's claim.
          if (length < kAbytes || length > length_max) {
            return FrameResult(absl::InvalidArgumentError(absl::StrCat(
                "frame length ", length, " is outside [", kAbytes, ", ", length_max, "]")));
          }
          kj::Array<kj::byte> cipher = kj::heapArray<kj::byte>(length);
          kj::byte* data = cipher.begin();
          return stream_->tryRead(data, length, length)
              .then([this, cipher = kj::mv(cipher)](size_t got) mutable {
                if (got < cipher.size()) {
                  return FrameResult(absl::UnavailableError("connection ended inside a frame"));
                }
                return OpenFrame(cipher);
              });
        });
  }

  FrameResult OpenFrame(const kj::Array<kj::byte>& cipher) {
    std::string plaintext(cipher.size() - kAbytes, '\0');
    unsigned long long plaintext_bytes = 0;
    unsigned char tag = 0;
    if (crypto_secretstream_xchacha20poly1305_pull(
            &pull_, reinterpret_cast<unsigned char*>(plaintext.data()), &plaintext_bytes, &tag,
            cipher.begin(), cipher.size(), nullptr, 0) != 0) {
      return absl::DataLossError("frame failed authentication (corrupted, reordered or forged)");
    }
    if (tag == crypto_secretstream_xchacha20poly1305_TAG_MESSAGE ||
        tag == crypto_secretstream_xchacha20poly1305_TAG_REKEY) {
      // libsodium has already rekeyed pull_ after a TAG_REKEY frame: a peer
      // that goes on with the old key fails authentication (kDataLoss).
      ++stats_.frames_received;
      received_since_rekey_ += plaintext.size() + kFrameOverheadBytes;
      if (tag == crypto_secretstream_xchacha20poly1305_TAG_REKEY) {
        ++stats_.rekeys_received;
        received_since_rekey_ = 0;
      } else if (received_since_rekey_ > 2 * options_.rekey_bytes) {
        return absl::InvalidArgumentError(
            absl::StrCat("peer sent ", received_since_rekey_, " bytes without rekeying (limit 2 * ",
                         "rekey_bytes = ", 2 * options_.rekey_bytes, ")"));
      }
      return plaintext;
    }
    if (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL && plaintext.empty()) {
      peer_closed_ = true;
      return absl::UnavailableError("peer closed the channel");
    }
    return absl::InvalidArgumentError(
        absl::StrCat("unexpected frame (tag ", tag, ", ", plaintext.size(), " bytes)"));
  }

  void StartWriting() {
    if (writing_ || queue_.empty() || !failure_.ok()) return;
    writing_ = true;
    write_task_ =
        kj::evalNow([this] { return WriteLoop(); }).eagerlyEvaluate([this](kj::Exception&& e) {
          // The failed chain is this very promise: leave it in place.
          writing_ = false;
          Fail(StatusFromKj(e, "send"), /*cancel_writes=*/false);
        });
  }

  kj::Promise<void> WriteLoop() {
    if (queue_.empty() || !failure_.ok()) {
      writing_ = false;
      NotifyDrained();
      return kj::READY_NOW;
    }
    // Coalesce queued frames into one write (always at least one frame).
    size_t wire_bytes = 0;
    size_t count = 0;
    for (const QueuedFrame& f : queue_) {
      const size_t w = f.plaintext.size() + kFrameOverheadBytes;
      if (count > 0 && wire_bytes + w > kWriteBatchBytes) break;
      wire_bytes += w;
      ++count;
    }
    kj::Array<kj::byte> wire = kj::heapArray<kj::byte>(wire_bytes);
    size_t offset = 0;
    bool final = false;
    for (size_t i = 0; i < count; ++i) {
      QueuedFrame f = std::move(queue_.front());
      queue_.pop_front();
      SealFrame(push_, f.plaintext,
                f.final ? crypto_secretstream_xchacha20poly1305_TAG_FINAL
                        : NextDataTag(f.plaintext.size()),
                wire.begin() + offset);
      offset += f.plaintext.size() + kFrameOverheadBytes;
      final = final || f.final;
    }
    kj::Promise<void> written = stream_->write(wire.begin(), wire.size());
    return written.attach(kj::mv(wire)).then([this, wire_bytes, final]() {
      queued_bytes_ -= wire_bytes;
      if (final) ShutdownWrite();
      return WriteLoop();
    });
  }

  // The tag of the next data frame: TAG_REKEY once rekey_bytes were sent
  // since the last rekey (this frame included) or rekey_interval_ms passed.
  unsigned char NextDataTag(size_t plaintext_bytes) {
    ++stats_.frames_sent;
    sent_since_rekey_ += plaintext_bytes + kFrameOverheadBytes;
    const kj::TimePoint now = timer_.now();
    if (sent_since_rekey_ < options_.rekey_bytes &&
        now - last_rekey_ < Ms(options_.rekey_interval_ms)) {
      return crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
    }
    sent_since_rekey_ = 0;
    last_rekey_ = now;
    ++stats_.rekeys_sent;
    return crypto_secretstream_xchacha20poly1305_TAG_REKEY;
  }

  // Closes both directions with `why` (the first failure wins). When called
  // from the write chain's own error handler, `cancel_writes` is false.
  void Fail(const absl::Status& why, bool cancel_writes) {
    if (!failure_.ok()) return;
    failure_ = why;
    if (cancel_writes) {
      write_task_ = nullptr;
      writing_ = false;
    }
    queue_.clear();
    queued_bytes_ = 0;
    NotifyDrained();
    ShutdownWrite();
    KJ_IF_MAYBE (abort, receive_abort_) {
      kj::Own<kj::PromiseFulfiller<FrameResult>> fulfiller = kj::mv(*abort);
      receive_abort_ = nullptr;
      fulfiller->fulfill(FrameResult(failure_));
    }
  }

  void NotifyDrained() {
    KJ_IF_MAYBE (f, drained_) {
      kj::Own<kj::PromiseFulfiller<void>> fulfiller = kj::mv(*f);
      drained_ = nullptr;
      fulfiller->fulfill();
    }
  }

  void ShutdownWrite() {
    if (write_shut_) return;
    write_shut_ = true;
    // Best effort: the stream may already be broken.
    (void)kj::runCatchingExceptions([this] { stream_->shutdownWrite(); });
  }

  kj::Own<kj::AsyncIoStream> stream_;  // first: destroyed last
  kj::Timer& timer_;
  const ChannelOptions options_;
  const crdt::AuthorKey peer_;
  SecretStream push_;
  SecretStream pull_;

  absl::Status failure_;  // OK until the channel fails; then sticky
  ChannelStats stats_;
  // Rekeying (ChannelOptions::rekey_bytes, rekey_interval_ms).
  uint64_t sent_since_rekey_ = 0;
  uint64_t received_since_rekey_ = 0;
  kj::TimePoint last_rekey_;

  // Receive side.
  std::array<kj::byte, kLengthBytes> length_{};
  bool receiving_ = false;
  bool peer_closed_ = false;
  kj::Maybe<kj::Own<kj::PromiseFulfiller<FrameResult>>> receive_abort_;

  // Send side.
  std::deque<QueuedFrame> queue_;
  size_t queued_bytes_ = 0;
  bool writing_ = false;
  bool closing_ = false;
  bool write_shut_ = false;
  kj::Maybe<kj::Own<kj::PromiseFulfiller<void>>> drained_;
  kj::Maybe<kj::Promise<void>> write_task_;

  kj::Canceler canceler_;
};

// ---------------------------------------------------------------------------
// The handshake: three flights each way, run concurrently by both sides.
//   1. hello (clear):  "ESYN" ‖ u16 version min ‖ u16 version max ‖ ephemeral X25519 key
//   2. secretstream header (clear) ‖ frame{static ed25519 key}
//   3. frame{signature}, sent only once the peer's static key is trusted
// Reads run in order on one chain; writes are queued on a second chain so a
// side never waits for its own write before reading (in-memory pipes only
// complete a write once the peer reads it).

class HandshakeRun {
 public:
  HandshakeRun(kj::Own<kj::AsyncIoStream> stream, ChannelRole role, const SigningKey& identity,
               PeerTrust& trust, kj::Timer& timer, const ChannelOptions& options)
      : stream_(kj::mv(stream)),
        role_(role),
        identity_(identity),
        trust_(trust),
        timer_(timer),
        options_(options) {}

  ~HandshakeRun() {
    sodium_memzero(ephemeral_secret_.data(), ephemeral_secret_.size());
    sodium_memzero(rx_.data(), rx_.size());
    sodium_memzero(tx_.data(), tx_.size());
    sodium_memzero(&push_, sizeof push_);
    sodium_memzero(&pull_, sizeof pull_);
  }

  HandshakeRun(const HandshakeRun&) = delete;
  HandshakeRun& operator=(const HandshakeRun&) = delete;

  kj::Promise<HandshakeResult> Run() {
    crypto_kx_keypair(ephemeral_.data(), ephemeral_secret_.data());
    std::memcpy(hello_.data(), kChannelMagic.data(), kChannelMagic.size());
    hello_[4] = static_cast<kj::byte>(kChannelProtocolVersionMin >> 8);
    hello_[5] = static_cast<kj::byte>(kChannelProtocolVersionMin & 0xff);
    hello_[6] = static_cast<kj::byte>(kChannelProtocolVersionMax >> 8);
    hello_[7] = static_cast<kj::byte>(kChannelProtocolVersionMax & 0xff);
    std::memcpy(hello_.data() + 8, ephemeral_.data(), kEphemeralBytes);
    kj::Array<kj::byte> hello = kj::heapArray<kj::byte>(kHelloBytes);
    std::memcpy(hello.begin(), hello_.data(), kHelloBytes);
    QueueWrite(kj::mv(hello));

    // The prefix first, so that a peer of another version whose hello has
    // another length still gets the version error rather than a timeout.
    return ReadExact(kHelloPrefixBytes).then([this](size_t n) -> kj::Promise<HandshakeResult> {
      if (n < kHelloPrefixBytes) return HandshakeResult(Ended(n));
      if (std::memcmp(in_.data(), kChannelMagic.data(), kChannelMagic.size()) != 0) {
        return HandshakeResult(absl::InvalidArgumentError(
            absl::StrCat("peer did not send an edgesync hello (first bytes ",
                         absl::BytesToHexString(absl::string_view(
                             reinterpret_cast<const char*>(in_.data()), kHelloPrefixBytes)),
                         ")")));
      }
      std::memcpy(peer_hello_.data(), in_.data(), kHelloPrefixBytes);
      const uint16_t min = static_cast<uint16_t>((in_[4] << 8) | in_[5]);
      if (min < 2) {
        // Version 1's hello had one version field and no range.
        return HandshakeResult(VersionMismatch(min, min));
      }
      return ReadExact(2).then([this, min](size_t m) -> kj::Promise<HandshakeResult> {
        if (m < 2) return HandshakeResult(Ended(kHelloPrefixBytes + m));
        std::memcpy(peer_hello_.data() + kHelloPrefixBytes, in_.data(), 2);
        const uint16_t max = static_cast<uint16_t>((in_[0] << 8) | in_[1]);
        if (max < min) {
          return HandshakeResult(absl::InvalidArgumentError(
              absl::StrCat("peer announced an empty version range ", min, "..", max)));
        }
        const uint16_t lo = std::max(min, kChannelProtocolVersionMin);
        const uint16_t hi = std::min(max, kChannelProtocolVersionMax);
        if (lo > hi) return HandshakeResult(VersionMismatch(min, max));
        version_ = hi;  // the highest version both speak
        return ReadExact(kEphemeralBytes).then([this](size_t k) { return OnHello(k); });
      });
    });
  }

 private:
  kj::Promise<size_t> ReadExact(size_t n) {
    ES_CHECK(n <= in_.size());
    return stream_->tryRead(in_.data(), n, n);
  }

  void QueueWrite(kj::Array<kj::byte> bytes) {
    write_tail_ = write_tail_
                      .then([this, bytes = kj::mv(bytes)]() mutable {
                        kj::Promise<void> written = stream_->write(bytes.begin(), bytes.size());
                        return written.attach(kj::mv(bytes));
                      })
                      .eagerlyEvaluate(nullptr);
  }

  static absl::Status VersionMismatch(uint16_t min, uint16_t max) {
    return absl::FailedPreconditionError(
        absl::StrCat("peer speaks secure channel versions ", min, "..", max, ", this build speaks ",
                     kChannelProtocolVersionMin, "..", kChannelProtocolVersionMax));
  }

  absl::Status Ended(size_t got) const {
    return absl::UnavailableError(got == 0 ? "peer closed the connection during the handshake"
                                           : "connection ended inside a handshake message");
  }

  // Decrypts one handshake frame of exactly `cipher_bytes` from in_, whose
  // length field has already been checked.
  absl::Status OpenHandshakeFrame(size_t cipher_bytes, kj::byte* out, absl::string_view what) {
    unsigned long long out_bytes = 0;
    unsigned char tag = 0;
    if (crypto_secretstream_xchacha20poly1305_pull(&pull_, out, &out_bytes, &tag, in_.data(),
                                                   cipher_bytes, nullptr, 0) != 0) {
      return absl::UnauthenticatedError(absl::StrCat(
          "handshake ", what,
          " failed decryption: session keys differ (a replayed session or a man in the middle)"));
    }
    if (tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE) {
      return absl::InvalidArgumentError(absl::StrCat("handshake ", what, " has tag ", tag));
    }
    return absl::OkStatus();
  }

  absl::Status CheckLength(size_t expected, absl::string_view what) const {
    const uint32_t length = LoadBe32(in_.data() + (in_offset_));
    if (length != expected) {
      return absl::InvalidArgumentError(
          absl::StrCat("handshake ", what, " has length ", length, ", expected ", expected));
    }
    return absl::OkStatus();
  }

  kj::Promise<HandshakeResult> OnHello(size_t n) {
    if (n < kEphemeralBytes) return HandshakeResult(Ended(n));
    std::memcpy(peer_ephemeral_.data(), in_.data(), kEphemeralBytes);
    std::memcpy(peer_hello_.data() + kHelloPrefixBytes + 2, in_.data(), kEphemeralBytes);
    const int kx =
        role_ == ChannelRole::kDialer
            ? crypto_kx_client_session_keys(rx_.data(), tx_.data(), ephemeral_.data(),
                                            ephemeral_secret_.data(), peer_ephemeral_.data())
            : crypto_kx_server_session_keys(rx_.data(), tx_.data(), ephemeral_.data(),
                                            ephemeral_secret_.data(), peer_ephemeral_.data());
    sodium_memzero(ephemeral_secret_.data(), ephemeral_secret_.size());
    if (kx != 0) {
      return HandshakeResult(absl::InvalidArgumentError("peer's ephemeral key is invalid"));
    }

    // Flight 2 out: push header ‖ frame{static key}.
    kj::Array<kj::byte> out =
        kj::heapArray<kj::byte>(kStreamHeaderBytes + crdt::kAuthorKeyBytes + kFrameOverheadBytes);
    crypto_secretstream_xchacha20poly1305_init_push(&push_, out.begin(), tx_.data());
    sodium_memzero(tx_.data(), tx_.size());
    SealFrame(push_, identity_.public_key().view(),
              crypto_secretstream_xchacha20poly1305_TAG_MESSAGE, out.begin() + kStreamHeaderBytes);
    QueueWrite(kj::mv(out));

    // Flight 2 in: header ‖ length, then the static key.
    return ReadExact(kStreamHeaderBytes + kLengthBytes)
        .then([this](size_t m) -> kj::Promise<HandshakeResult> {
          if (m < kStreamHeaderBytes + kLengthBytes) return HandshakeResult(Ended(m));
          in_offset_ = kStreamHeaderBytes;
          if (absl::Status s = CheckLength(kStaticCipherBytes, "key message"); !s.ok()) {
            return HandshakeResult(s);
          }
          const int pull =
              crypto_secretstream_xchacha20poly1305_init_pull(&pull_, in_.data(), rx_.data());
          sodium_memzero(rx_.data(), rx_.size());
          if (pull != 0) {
            return HandshakeResult(absl::InvalidArgumentError("invalid secretstream header"));
          }
          return ReadExact(kStaticCipherBytes).then([this](size_t k) { return OnPeerKey(k); });
        });
  }

  kj::Promise<HandshakeResult> OnPeerKey(size_t n) {
    if (n < kStaticCipherBytes) return HandshakeResult(Ended(n));
    if (absl::Status s =
            OpenHandshakeFrame(kStaticCipherBytes, peer_static_.bytes.data(), "key message");
        !s.ok()) {
      return HandshakeResult(s);
    }
    if (peer_static_ == identity_.public_key()) {
      // Whoever presents our own key is either this very node (which has
      // nothing to gain from talking to itself) or someone shuttling our
      // own flights back to us: refuse before signing anything.
      return HandshakeResult(absl::UnauthenticatedError(
          absl::StrCat("peer presents this side's own key ", KeyPrefix(peer_static_),
                       "...: a reflected handshake or a connection to itself")));
    }
    if (!trust_.IsTrustedPeer(peer_static_)) {
      return HandshakeResult(absl::UnauthenticatedError(
          absl::StrCat("peer key ", KeyPrefix(peer_static_), "... is not trusted")));
    }

    // Flight 3 out: frame{signature over the transcript}.
    const std::string signature = identity_.Sign(kHandshakeSignatureTag, Transcript(role_));
    kj::Array<kj::byte> out = kj::heapArray<kj::byte>(kSignatureBytes + kFrameOverheadBytes);
    SealFrame(push_, signature, crypto_secretstream_xchacha20poly1305_TAG_MESSAGE, out.begin());
    QueueWrite(kj::mv(out));

    // Flight 3 in.
    return ReadExact(kLengthBytes).then([this](size_t m) -> kj::Promise<HandshakeResult> {
      if (m < kLengthBytes) return HandshakeResult(Ended(m));
      in_offset_ = 0;
      if (absl::Status s = CheckLength(kSignatureCipherBytes, "signature message"); !s.ok()) {
        return HandshakeResult(s);
      }
      return ReadExact(kSignatureCipherBytes).then([this](size_t k) { return OnPeerSignature(k); });
    });
  }

  kj::Promise<HandshakeResult> OnPeerSignature(size_t n) {
    if (n < kSignatureCipherBytes) return HandshakeResult(Ended(n));
    std::array<kj::byte, kSignatureBytes> signature{};
    if (absl::Status s =
            OpenHandshakeFrame(kSignatureCipherBytes, signature.data(), "signature message");
        !s.ok()) {
      return HandshakeResult(s);
    }
    const ChannelRole peer_role =
        role_ == ChannelRole::kDialer ? ChannelRole::kListener : ChannelRole::kDialer;
    if (!VerifySignature(
            peer_static_, kHandshakeSignatureTag, Transcript(peer_role),
            absl::string_view(reinterpret_cast<const char*>(signature.data()), signature.size()))) {
      return HandshakeResult(absl::UnauthenticatedError(absl::StrCat(
          "handshake signature of peer ", KeyPrefix(peer_static_), "... does not verify")));
    }
    // Done once our own last flight is written.
    return kj::mv(write_tail_).then([this]() {
      return HandshakeResult(kj::Own<SecureChannel>(
          kj::heap<ChannelImpl>(kj::mv(stream_), push_, pull_, peer_static_, timer_, options_)));
    });
  }

  // What `signer` signs: u16 version ‖ u8 signer role ‖ dialer hello ‖
  // listener hello ‖ dialer static ‖ listener static.
  std::string Transcript(ChannelRole signer) const {
    const bool dialer = role_ == ChannelRole::kDialer;
    const auto view = [](const auto& a) {
      return absl::string_view(reinterpret_cast<const char*>(a.data()), a.size());
    };
    const char head[3] = {
        static_cast<char>(version_ >> 8), static_cast<char>(version_ & 0xff),
        static_cast<char>(signer == ChannelRole::kDialer ? kTranscriptRoleDialer
                                                         : kTranscriptRoleListener)};
    const absl::string_view mine_h = view(hello_);
    const absl::string_view peer_h = view(peer_hello_);
    const absl::string_view mine_s = identity_.public_key().view();
    const absl::string_view peer_s = peer_static_.view();
    return dialer ? absl::StrCat(absl::string_view(head, 3), mine_h, peer_h, mine_s, peer_s)
                  : absl::StrCat(absl::string_view(head, 3), peer_h, mine_h, peer_s, mine_s);
  }

  kj::Own<kj::AsyncIoStream> stream_;
  const ChannelRole role_;
  const SigningKey& identity_;
  PeerTrust& trust_;
  kj::Timer& timer_;
  const ChannelOptions options_;

  std::array<kj::byte, kEphemeralBytes> ephemeral_{};
  std::array<kj::byte, crypto_kx_SECRETKEYBYTES> ephemeral_secret_{};
  std::array<kj::byte, kEphemeralBytes> peer_ephemeral_{};
  std::array<kj::byte, kHelloBytes> hello_{};       // as sent
  std::array<kj::byte, kHelloBytes> peer_hello_{};  // as received
  uint16_t version_ = 0;                            // negotiated
  std::array<kj::byte, kSessionKeyBytes> rx_{};
  std::array<kj::byte, kSessionKeyBytes> tx_{};
  SecretStream push_{};
  SecretStream pull_{};
  crdt::AuthorKey peer_static_;

  // Every handshake read lands here; the largest is flight 2's header+length.
  std::array<kj::byte, kSignatureCipherBytes> in_{};
  size_t in_offset_ = 0;
  kj::Promise<void> write_tail_ = kj::READY_NOW;
};

static_assert(kSignatureCipherBytes >= kStreamHeaderBytes + kLengthBytes);
static_assert(kSignatureCipherBytes >= kHelloBytes);

}  // namespace

absl::Status ValidateChannelOptions(const ChannelOptions& options) {
  if (options.frame_bytes_max == 0 || options.frame_bytes_max > kFrameBytesLimit) {
    return absl::InvalidArgumentError(absl::StrCat("frame_bytes_max ", options.frame_bytes_max,
                                                   " is outside [1, ", kFrameBytesLimit, "]"));
  }
  for (const auto& [name, ms] : {std::pair{"handshake_timeout_ms", options.handshake_timeout_ms},
                                 std::pair{"idle_timeout_ms", options.idle_timeout_ms},
                                 std::pair{"close_timeout_ms", options.close_timeout_ms},
                                 std::pair{"rekey_interval_ms", options.rekey_interval_ms}}) {
    if (ms == 0 || ms > kChannelTimeoutMsLimit) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " ", ms, " is outside [1, ", kChannelTimeoutMsLimit, "]"));
    }
  }
  if (options.rekey_bytes == 0 || options.rekey_bytes > kRekeyBytesLimit) {
    return absl::InvalidArgumentError(absl::StrCat("rekey_bytes ", options.rekey_bytes,
                                                   " is outside [1, ", kRekeyBytesLimit, "]"));
  }
  if (options.send_queue_bytes_max < size_t{options.frame_bytes_max} + kFrameOverheadBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("send_queue_bytes_max ", options.send_queue_bytes_max,
                     " is below frame_bytes_max + ", kFrameOverheadBytes));
  }
  return absl::OkStatus();
}

kj::Promise<HandshakeResult> Handshake(kj::Own<kj::AsyncIoStream> stream, ChannelRole role,
                                       const SigningKey& identity, PeerTrust& trust,
                                       kj::Timer& timer, const ChannelOptions& options) {
  if (absl::Status s = ValidateChannelOptions(options); !s.ok()) return HandshakeResult(s);
  if (absl::Status s = InitSodium(); !s.ok()) return HandshakeResult(s);
  kj::Own<HandshakeRun> run =
      kj::heap<HandshakeRun>(kj::mv(stream), role, identity, trust, timer, options);
  HandshakeRun& r = *run;
  const uint64_t ms = options.handshake_timeout_ms;
  kj::Promise<HandshakeResult> work = kj::evalNow([&r] { return r.Run(); });
  kj::Promise<HandshakeResult> deadline = timer.afterDelay(Ms(ms)).then([ms]() {
    return HandshakeResult(
        absl::DeadlineExceededError(absl::StrCat("handshake did not complete within ", ms, " ms")));
  });
  return work.exclusiveJoin(kj::mv(deadline)).attach(kj::mv(run)).catch_([](kj::Exception&& e) {
    return HandshakeResult(StatusFromKj(e, "handshake"));
  });
}

}  // namespace edgesync::transport
