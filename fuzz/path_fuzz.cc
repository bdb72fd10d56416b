// Fuzz target: Path::Parse (JSON Pointer text from users) and
// Path::FromEncoded (paths inside received rows). A parsed path prints as
// text that parses back equal; its encoding validates back equal; its
// structure (keys, parent, ancestors, prefixes) is consistent.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "crdt/check.h"
#include "crdt/path.h"

namespace {

using edgesync::crdt::Path;

void CheckPath(const Path& p) {
  absl::StatusOr<Path> text = Path::Parse(p.ToString());
  ES_CHECK(text.ok());
  ES_CHECK(*text == p);
  ES_CHECK(text->ToString() == p.ToString());
  absl::StatusOr<Path> encoded = Path::FromEncoded(p.encoded());
  ES_CHECK(encoded.ok());
  ES_CHECK(*encoded == p);
  const std::vector<std::string> keys = p.Keys();
  ES_CHECK(keys.size() == p.depth());
  absl::StatusOr<Path> from_keys = Path::FromKeys(keys);
  ES_CHECK(from_keys.ok());
  ES_CHECK(*from_keys == p);
  ES_CHECK(Path().IsPrefixOf(p));
  ES_CHECK(p.IsPrefixOf(p));
  if (p.is_root()) {
    ES_CHECK(keys.empty());
    ES_CHECK(p.Ancestors().empty());
    return;
  }
  ES_CHECK(p.LastKey() == keys.back());
  const Path parent = p.Parent();
  ES_CHECK(parent.depth() + 1 == p.depth());
  ES_CHECK(parent.IsPrefixOf(p));
  ES_CHECK(!p.IsPrefixOf(parent));
  ES_CHECK(parent < p);
  absl::StatusOr<Path> child = parent.Child(p.LastKey());
  ES_CHECK(child.ok());
  ES_CHECK(*child == p);
  const std::vector<Path> ancestors = p.Ancestors();
  ES_CHECK(ancestors.size() + 1 == keys.size());
  for (size_t i = 0; i < ancestors.size(); ++i) {
    ES_CHECK(ancestors[i].depth() == i + 1);
    ES_CHECK(ancestors[i].IsPrefixOf(p));
    ES_CHECK(ancestors[i] != p);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view input(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<Path> parsed = Path::Parse(input);
  if (parsed.ok()) {
    CheckPath(*parsed);
    ES_CHECK(parsed->ToString() == input);  // the text form has one spelling per path
  } else {
    ES_CHECK(parsed.status().code() == absl::StatusCode::kInvalidArgument);
  }
  absl::StatusOr<Path> decoded = Path::FromEncoded(input);
  if (decoded.ok()) {
    CheckPath(*decoded);
    ES_CHECK(decoded->encoded() == input);
  } else {
    ES_CHECK(decoded.status().code() == absl::StatusCode::kInvalidArgument);
  }
  return 0;
}
