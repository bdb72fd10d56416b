// File: transport/capnp_util.h
//
// Small helpers at the Cap'n Proto edge: views between capnp Data and
// absl::string_view, flat encoding, and reading untrusted bytes with explicit
// limits where every KJ exception becomes an absl::Status.

#ifndef EDGESYNC_TRANSPORT_CAPNP_UTIL_H_
#define EDGESYNC_TRANSPORT_CAPNP_UTIL_H_

#include <capnp/message.h>

#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace edgesync::transport {

inline capnp::Data::Reader AsCapnpData(absl::string_view s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

inline absl::string_view AsView(capnp::Data::Reader d) {
  return absl::string_view(reinterpret_cast<const char*>(d.begin()), d.size());
}

std::string MessageToBytes(capnp::MessageBuilder& message);

// Parses `bytes` as one flat Cap'n Proto message and calls `read` on it.
// The traversal limit is four times the message's size (zero-sized list
// elements count as a word each, so a small message cannot make a reader
// loop for long), the nesting limit 16.
// Malformed bytes, including any KJ exception raised while `read` walks the
// message, give kInvalidArgument; `read`'s own status is returned as is.
absl::Status ReadCapnp(absl::string_view bytes,
                       absl::FunctionRef<absl::Status(capnp::MessageReader&)> read);

}  // namespace edgesync::transport

#endif  // EDGESYNC_TRANSPORT_CAPNP_UTIL_H_
