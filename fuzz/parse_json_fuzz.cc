// Fuzz target: ParseJsonTree and ParseJsonScalar, the text every local write
// starts from. A parsed tree written into a document reads back as JSON that
// parses to a tree reading back identically; a parsed scalar prints as JSON
// that parses back to the same value.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "crdt/check.h"
#include "crdt/json.h"
#include "crdt/memory_store.h"
#include "crdt/read.h"
#include "crdt/transaction_builder.h"

namespace {

using edgesync::crdt::AuthorKey;
using edgesync::crdt::MemoryStore;
using edgesync::crdt::Path;
using edgesync::crdt::Tree;

// Writes `tree` into an empty document (at the root if it is an object,
// else at "/x") and returns what reads back there, or nullopt if the write
// is refused (a scalar nested one level deeper may exceed the depth limit).
std::optional<std::string> WriteAndRead(const Tree& tree) {
  MemoryStore state;
  AuthorKey author;
  author.bytes.fill(0x42);
  const Path path = tree.kind == Tree::Kind::kMap ? Path() : Path().ChildUnchecked("x");
  edgesync::crdt::TransactionBuilder txn(&state, author, 1, 1);
  absl::Status s = txn.Put(path, tree);
  if (!s.ok()) {
    ES_CHECK(s.code() == absl::StatusCode::kInvalidArgument);
    return std::nullopt;
  }
  ES_CHECK(txn.Finish().ok());
  absl::StatusOr<std::string> json = edgesync::crdt::ReadJson(&state, path);
  ES_CHECK(json.ok());
  return *json;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace edgesync::crdt;
  const absl::string_view input(reinterpret_cast<const char*>(data), size);

  absl::StatusOr<Tree> tree = ParseJsonTree(input);
  if (!tree.ok()) {
    ES_CHECK(tree.status().code() == absl::StatusCode::kInvalidArgument);
  } else if (std::optional<std::string> first = WriteAndRead(*tree)) {
    absl::StatusOr<Tree> reparsed = ParseJsonTree(*first);
    ES_CHECK(reparsed.ok());
    std::optional<std::string> second = WriteAndRead(*reparsed);
    ES_CHECK(second.has_value());
    ES_CHECK(*first == *second);
  }

  absl::StatusOr<Value> scalar = ParseJsonScalar(input);
  if (!scalar.ok()) {
    ES_CHECK(scalar.status().code() == absl::StatusCode::kInvalidArgument);
    return 0;
  }
  ES_CHECK(tree.ok());
  const std::string printed = ScalarToJson(*scalar);
  absl::StatusOr<Value> back = ParseJsonScalar(printed);
  ES_CHECK(back.ok());
  ES_CHECK(*back == *scalar);
  ES_CHECK(ScalarToJson(*back) == printed);
  return 0;
}
