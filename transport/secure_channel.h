// File: transport/secure_channel.h
//
// The secure channel: an authenticated, encrypted, framed byte stream
// between two peers known by their ed25519 keys, built on a kj
// AsyncIoStream (TCP in production, an in-memory pipe in tests). It is what
// the gossip node speaks over; docs/transport.md ("Secure channel", "Frames")
// is the normative description of the wire format.
//
// Handshake() runs the key exchange and mutual authentication and, on
// success, yields a SecureChannel that sends and receives whole frames of at
// most `frame_bytes_max` plaintext bytes each:
//
//   kj::Promise<absl::StatusOr<kj::Own<SecureChannel>>> p =
//       Handshake(kj::mv(stream), ChannelRole::kDialer, identity, trust, timer, {});
//   ... p.then([](absl::StatusOr<kj::Own<SecureChannel>> ch) { ... (*ch)->Send("hi"); ... });
//
// No kj exception leaves this API: every failure is an absl::Status.
// REQUIRES (all of this file): called on the thread that runs the kj event
// loop the stream belongs to (one kj event loop per thread).

#ifndef EDGESYNC_TRANSPORT_SECURE_CHANNEL_H_
#define EDGESYNC_TRANSPORT_SECURE_CHANNEL_H_

#include <kj/async-io.h>
#include <kj/async.h>
#include <kj/timer.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "crdt/dot.h"
#include "transport/signing_key.h"

namespace edgesync::transport {

// The secure channel versions this build speaks: the range it announces in
// its hello (docs/transport.md, "Secure channel"). Version 1 had no range and
// an unbound transcript; it is refused.
inline constexpr uint16_t kChannelProtocolVersionMin = 2;
inline constexpr uint16_t kChannelProtocolVersionMax = 2;
inline constexpr uint16_t kChannelProtocolVersion = kChannelProtocolVersionMax;
// The first four bytes either side sends.
inline constexpr absl::string_view kChannelMagic = "ESYN";
// Bytes of a version-2 hello: magic, u16 min, u16 max, ephemeral key.
inline constexpr size_t kChannelHelloBytes = 4 + 2 + 2 + 32;
// Domain-separation tag of the handshake signature.
inline constexpr absl::string_view kHandshakeSignatureTag = "edgesync/handshake/v2";
// The signer's role byte in the signed transcript.
inline constexpr uint8_t kTranscriptRoleDialer = 1;
inline constexpr uint8_t kTranscriptRoleListener = 2;
// Bytes a frame adds to its plaintext on the wire: the 4-byte length and the
// secretstream overhead (crypto_secretstream_xchacha20poly1305_ABYTES = 17).
inline constexpr size_t kFrameOverheadBytes = 4 + 17;
// The largest frame_bytes_max a channel accepts (the length is a u32, and
// whole frames are buffered).
inline constexpr uint32_t kFrameBytesLimit = 16u << 20;
// The largest rekey_bytes a channel accepts (1 PiB).
inline constexpr uint64_t kRekeyBytesLimit = uint64_t{1} << 50;
// The largest timeout a channel accepts, in milliseconds (about 34 years).
inline constexpr uint64_t kChannelTimeoutMsLimit = uint64_t{1} << 40;

// Decides which peers may connect. Thread-confined: called on the
// event-loop thread running the handshake, once per handshake, with the peer's static key before
// any signature from it is checked. Implementations must not block.
class PeerTrust {
 public:
  virtual ~PeerTrust() = default;
  virtual bool IsTrustedPeer(const crdt::AuthorKey& key) = 0;
};

// Limits of one channel. Both peers should use the same frame_bytes_max: a
// frame larger than the receiver's limit closes the connection.
// Thread-compatible value type.
struct ChannelOptions {
  uint32_t frame_bytes_max = 1u << 20;   // plaintext bytes per frame, 1..kFrameBytesLimit
  uint64_t handshake_timeout_ms = 5000;  // whole handshake, both directions
  uint64_t idle_timeout_ms = 60000;      // a pending Receive() with no frame for this long
  uint64_t close_timeout_ms = 5000;      // Close(): flushing queued frames
  // Queued, unwritten bytes: each frame counts its plaintext plus
  // kFrameOverheadBytes, so empty frames are bounded too. Must be at least
  // frame_bytes_max + kFrameOverheadBytes.
  size_t send_queue_bytes_max = 8u << 20;
  // Rekeying: the sender marks a frame TAG_REKEY (both ends then derive a
  // new key for what follows) once the frames sent since the last rekey
  // (plaintext + kFrameOverheadBytes each) reach rekey_bytes, or when the
  // first frame is sent rekey_interval_ms or more after the last rekey (or
  // the handshake). A peer that sends more than 2 * rekey_bytes without a
  // rekey frame is cut off, so peers should agree on rekey_bytes.
  uint64_t rekey_bytes = uint64_t{1} << 30;  // 1 GiB, 1..kRekeyBytesLimit
  uint64_t rekey_interval_ms = 3600 * 1000;  // 1 hour
};

// Counters of one channel. Thread-compatible value type.
struct ChannelStats {
  uint64_t frames_sent = 0;      // data frames written (not the final frame)
  uint64_t frames_received = 0;  // data frames received
  uint64_t rekeys_sent = 0;      // frames this side sent with TAG_REKEY
  uint64_t rekeys_received = 0;  // TAG_REKEY frames received from the peer
};

enum class ChannelRole {
  kDialer,    // opened the connection; the crypto_kx client
  kListener,  // accepted it; the crypto_kx server
};

// An established channel. Thread-confined to the event loop it was made on.
//
// Directions: the peer ends its direction with a final frame (its Close());
// Receive() then reports kUnavailable, and this side may still Send() until
// it calls Close(). Any error (bad frame, idle timeout, I/O failure, EOF
// without a final frame) closes both directions at once: later Send()s give
// kUnavailable and later Receive()s repeat the error.
//
// Destroying the channel closes the connection at once (queued frames are
// dropped) and resolves its pending Receive() with kUnavailable and its
// pending Close(); promises it returned may outlive it.
class SecureChannel {
 public:
  virtual ~SecureChannel() = default;

  // The peer's static ed25519 key, authenticated by the handshake.
  virtual const crdt::AuthorKey& peer() const = 0;

  // Queues one frame; frames are written in order in the background.
  // kInvalidArgument if it is over frame_bytes_max; kResourceExhausted if
  // queued_bytes() would pass send_queue_bytes_max (nothing is queued: retry
  // once Receive()/writes make progress, or drop the peer);
  // kFailedPrecondition after Close(); kUnavailable once the channel failed.
  virtual absl::Status Send(std::string frame) = 0;

  // The next frame, or why the connection ended: kUnavailable for the peer's
  // final frame, EOF or an I/O error; kDataLoss for a frame that fails
  // authentication (tampered, reordered, truncated); kInvalidArgument for a
  // length outside [17, frame_bytes_max + 17] or another protocol violation;
  // kDeadlineExceeded if no frame arrives within idle_timeout_ms (idle time
  // counts while a Receive() is pending, so keep one pending and let the
  // peer send keep-alive frames; an empty frame will do).
  // kFailedPrecondition if another Receive() is still pending.
  virtual kj::Promise<absl::StatusOr<std::string>> Receive() = 0;

  // Flushes queued frames (at most close_timeout_ms; after that they are
  // dropped), sends the final frame and shuts down this direction. Never
  // fails; a second call resolves at once. Receive() keeps working until the
  // peer's final frame.
  virtual kj::Promise<void> Close() = 0;

  // Bytes queued and not yet written (see send_queue_bytes_max).
  virtual size_t queued_bytes() const = 0;

  // Counters since the handshake.
  virtual ChannelStats stats() const = 0;
};

// Runs the handshake over `stream` (docs/transport.md, "Secure channel").
// On success the channel owns the stream; on failure the stream is closed.
// Errors: kUnauthenticated if the peer's key is not trusted (names the key's
// hex prefix), is this side's own key (a reflected handshake or a connection
// to itself), its signature does not verify or a handshake message fails
// decryption (a replay or a man in the middle); kFailedPrecondition "peer
// speaks secure channel versions A..B, this build speaks 2..2" when the
// version ranges do not overlap; kDeadlineExceeded after
// handshake_timeout_ms; kInvalidArgument for malformed handshake bytes or
// invalid `options`; kUnavailable if the connection ends (an untrusting peer
// simply closes it) or fails.
// `identity`, `trust` and `timer` are borrowed: `identity` and `trust` until
// the promise resolves, `timer` for the lifetime of the channel.
kj::Promise<absl::StatusOr<kj::Own<SecureChannel>>> Handshake(kj::Own<kj::AsyncIoStream> stream,
                                                              ChannelRole role,
                                                              const SigningKey& identity,
                                                              PeerTrust& trust, kj::Timer& timer,
                                                              const ChannelOptions& options);

// Checks `options` against the limits above; kInvalidArgument says which.
absl::Status ValidateChannelOptions(const ChannelOptions& options);

}  // namespace edgesync::transport

#endif  // EDGESYNC_TRANSPORT_SECURE_CHANNEL_H_
