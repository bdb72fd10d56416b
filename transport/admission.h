// File: transport/admission.h
//
// Admission: the per-address gate a listener applies to each accepted
// connection before any handshake work (docs/transport.md, "Admission
// limits"). It bounds open connections in total and per address, and rate
// limits handshakes per address with a token bucket. It has no clock: the
// caller passes a monotonic time in milliseconds, so tests need no sleeps.
//
//   absl::StatusOr<Admission> a = Admission::Create({});
//   if (absl::Status s = a->Admit(remote_host, now_ms); !s.ok()) { drop the socket; }
//   ... handshake, session ...
//   a->Release(remote_host);  // exactly once per successful Admit()
//
// The address is the remote host as text without the port (for example
// "192.0.2.7" or "2001:db8::1"); ports are free to an attacker.

#ifndef EDGESYNC_TRANSPORT_ADMISSION_H_
#define EDGESYNC_TRANSPORT_ADMISSION_H_

#include <cstddef>
#include <cstdint>
#include <list>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace edgesync::transport {

// Thread-compatible value type.
struct AdmissionOptions {
  size_t connections_max = 256;                     // open connections, all addresses
  uint32_t connections_per_address_max = 8;         // open connections from one address
  uint32_t handshakes_per_address_per_minute = 30;  // token bucket refill rate
  uint32_t handshakes_burst = 10;                   // token bucket capacity
  // Addresses remembered; when full, the least recently seen address with no
  // open connection is forgotten. Must be at least connections_max.
  size_t addresses_max = 4096;
};

// The longest address accepted, in bytes.
inline constexpr size_t kAdmissionAddressBytesMax = 128;

// Thread-compatible: one listener's event loop owns it.
class Admission {
 public:
  // kInvalidArgument if a limit is zero or addresses_max < connections_max.
  static absl::StatusOr<Admission> Create(const AdmissionOptions& options);

  // Admits one connection from `address` at time `now_ms` (monotonic; a time
  // earlier than a previous one counts as no time passing). On OK the
  // connection counts as open until Release(). kResourceExhausted, with the
  // limit reached in the message, if the total or per-address connection
  // limit is reached, the address has no handshake token left, or every
  // remembered address has an open connection; kInvalidArgument for an
  // empty address or one over kAdmissionAddressBytesMax.
  absl::Status Admit(absl::string_view address, uint64_t now_ms);

  // Ends one connection admitted for `address`. Releasing an address with no
  // open connection is a bug (ES_CHECK).
  void Release(absl::string_view address);

  // Open connections, all addresses.
  size_t connections() const { return connections_; }
  // Addresses currently remembered (at most addresses_max).
  size_t addresses() const { return entries_.size(); }

 private:
  // One token is kTokenScale units, so refilling at r per minute adds r units per ms.
  static constexpr uint64_t kTokenScale = 60000;

  struct Entry {
    uint32_t open = 0;
    uint64_t tokens = 0;  // in 1/kTokenScale of a handshake
    uint64_t refilled_ms = 0;
    std::list<std::string>::iterator idle_pos;  // valid iff open == 0
  };

  explicit Admission(const AdmissionOptions& options) : options_(options) {}
  void Refill(Entry& entry, uint64_t now_ms) const;
  // Makes room for one more entry; false if every entry has open connections.
  bool EvictOneIdle();

  AdmissionOptions options_;
  size_t connections_ = 0;
  absl::flat_hash_map<std::string, Entry> entries_;
  // Addresses with no open connection, least recently seen first.
  std::list<std::string> idle_;
};

}  // namespace edgesync::transport

#endif  // EDGESYNC_TRANSPORT_ADMISSION_H_
