// ChangeJson (include/edgesync/types.h).

#include "absl/strings/str_cat.h"
#include "edgesync/types.h"

namespace edgesync {
namespace {

// Ids, paths and keys are UTF-8 (checked when written), so escaping '"',
// '\\' and control characters is all JSON needs.
void AppendQuoted(std::string* out, absl::string_view s) {
  out->push_back('"');
  for (char c : s) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(c);
    } else if (u < 0x20) {
      static constexpr char kHex[] = "0123456789abcdef";
      out->append("\\u00");
      out->push_back(kHex[u >> 4]);
      out->push_back(kHex[u & 15]);
    } else {
      out->push_back(c);
    }
  }
  out->push_back('"');
}

}  // namespace

std::string ChangeJson(const Change& change) {
  std::string json = "{\"doc\":";
  AppendQuoted(&json, change.document);
  json.append(",\"paths\":[");
  for (size_t i = 0; i < change.paths.size(); ++i) {
    if (i > 0) json.push_back(',');
    AppendQuoted(&json, change.paths[i]);
  }
  absl::StrAppend(&json, "],\"remote\":", change.remote ? "true" : "false", ",\"author\":");
  AppendQuoted(&json, change.author);
  absl::StrAppend(&json, ",\"paths_truncated\":", change.paths_truncated ? "true" : "false", "}");
  return json;
}

}  // namespace edgesync
