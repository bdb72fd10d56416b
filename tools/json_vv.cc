#include "tools/json_vv.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace edgesync::cli {

namespace {

using Json = nlohmann::json;

bool IsAuthorHex(absl::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c)) && (c < 'a' || c > 'f')) return false;
  }
  return true;
}

absl::StatusOr<SeqRanges> ParseRanges(const Json& list, absl::string_view where) {
  if (!list.is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": expected an array of [first,last]"));
  }
  SeqRanges out;
  for (const Json& range : list) {
    if (!range.is_array() || range.size() != 2 || !range[0].is_number_unsigned() ||
        !range[1].is_number_unsigned()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": a range must be [first,last] with unsigned integers"));
    }
    const uint64_t first = range[0].get<uint64_t>();
    const uint64_t last = range[1].get<uint64_t>();
    if (first < 1 || first > last) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": range [", first, ",", last, "] needs 1 <= first <= last"));
    }
    out.emplace_back(first, last);
  }
  return out;
}

}  // namespace

std::string VersionVectorsToJson(const VersionVectors& vvs) {
  Json out = Json::object();
  for (const auto& [doc, vv] : vvs) {
    Json authors = Json::object();
    for (const auto& [author, ranges] : vv) {
      Json list = Json::array();
      for (const auto& [first, last] : ranges) list.push_back(Json::array({first, last}));
      authors[author] = std::move(list);
    }
    out[doc] = std::move(authors);
  }
  // Document ids are valid UTF-8 (the replica checks them), so `replace`
  // never fires; it only keeps dump() from throwing.
  return out.dump(-1, ' ', false, Json::error_handler_t::replace);
}

absl::StatusOr<VersionVectors> VersionVectorsFromJson(absl::string_view json) {
  Json parsed;
  try {
    parsed = Json::parse(json.begin(), json.end());
  } catch (const Json::parse_error& e) {
    // what() is "[json.exception.parse_error.101] parse error at ...".
    const absl::string_view what = e.what();
    const size_t cut = what.find("] ");
    return absl::InvalidArgumentError(
        absl::StrCat("version vectors: ", cut == what.npos ? what : what.substr(cut + 2)));
  }
  if (!parsed.is_object()) {
    return absl::InvalidArgumentError("version vectors: expected a JSON object keyed by document");
  }
  VersionVectors out;
  for (const auto& [doc, authors] : parsed.items()) {
    const std::string where = absl::StrCat("version vectors: document \"", doc, "\"");
    if (!authors.is_object()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": expected an object keyed by author"));
    }
    VersionVector& vv = out[doc];
    for (const auto& [author, ranges] : authors.items()) {
      if (!IsAuthorHex(author)) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": author \"", author, "\" is not 64 lowercase hex digits"));
      }
      absl::StatusOr<SeqRanges> parsed_ranges =
          ParseRanges(ranges, absl::StrCat(where, ", author ", author.substr(0, 8), "..."));
      if (!parsed_ranges.ok()) return parsed_ranges.status();
      vv[author] = *std::move(parsed_ranges);
    }
  }
  return out;
}

absl::StatusOr<VersionVectors> ReadVersionVectorsFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open \"", path, "\""));
  std::string text;
  char buffer[1 << 16];
  while (in.read(buffer, sizeof(buffer)) || in.gcount() > 0) {
    text.append(buffer, static_cast<size_t>(in.gcount()));
    if (text.size() > kVersionVectorFileBytesMax) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "\"", path, "\" is over the limit of ", kVersionVectorFileBytesMax, " bytes"));
    }
  }
  if (in.bad()) return absl::UnavailableError(absl::StrCat("cannot read \"", path, "\""));
  absl::StatusOr<VersionVectors> vvs = VersionVectorsFromJson(text);
  if (!vvs.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("\"", path, "\": ", vvs.status().message()));
  }
  return vvs;
}

}  // namespace edgesync::cli
