#include "transport/capnp_util.h"

#include <capnp/serialize.h>
#include <kj/array.h>
#include <kj/exception.h>

#include <cstring>

#include "absl/strings/str_cat.h"

namespace edgesync::transport {

std::string MessageToBytes(capnp::MessageBuilder& message) {
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  kj::ArrayPtr<const kj::byte> bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

absl::Status ReadCapnp(absl::string_view bytes,
                       absl::FunctionRef<absl::Status(capnp::MessageReader&)> read) {
  if (bytes.size() % sizeof(capnp::word) != 0 || bytes.empty()) {
    return absl::InvalidArgumentError("message is not a whole number of 8-byte words");
  }
  // FlatArrayMessageReader needs word-aligned memory.
  kj::Array<capnp::word> words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
  std::memcpy(words.begin(), bytes.data(), bytes.size());
  capnp::ReaderOptions options;
  // Readers may look at a field more than once; four passes over the
  // message still bound the work by its size.
  options.traversalLimitInWords = 4 * words.size() + 64;
  options.nestingLimit = 16;
  try {
    capnp::FlatArrayMessageReader reader(words.asPtr(), options);
    if (reader.getEnd() != words.end()) {
      return absl::InvalidArgumentError("trailing bytes after message");
    }
    return read(reader);
  } catch (const kj::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("malformed message: ", e.getDescription().cStr()));
  }
}

}  // namespace edgesync::transport
