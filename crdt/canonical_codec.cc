#include "crdt/canonical_codec.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/array.h>
#include <kj/exception.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "crdt/crdt.capnp.h"
#include "crdt/size_limits.h"

namespace edgesync::crdt {

namespace {

capnp::Data::Reader AsData(absl::string_view s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

absl::string_view AsView(capnp::Data::Reader d) {
  return absl::string_view(reinterpret_cast<const char*>(d.begin()), d.size());
}

}  // namespace

std::string EncodeCanonical(const Delta& delta) {
  capnp::MallocMessageBuilder message;
  auto state = message.initRoot<schema::State>();
  state.setFormatVersion(kCanonicalFormatVersion);
  auto rows = state.initRows(static_cast<unsigned>(delta.rows.size()));
  for (size_t i = 0; i < delta.rows.size(); ++i) {
    const Row& row = delta.rows[i];
    auto r = rows[static_cast<unsigned>(i)];
    r.setPath(AsData(row.key.path.encoded()));
    r.setFacet(static_cast<uint8_t>(row.key.facet));
    r.setElement(AsData(row.key.element));
    r.setAuthor(AsData(row.key.dot.author.view()));
    r.setN(row.key.dot.n);
    auto variants = r.initVariants(static_cast<unsigned>(row.value.size()));
    for (size_t v = 0; v < row.value.size(); ++v) {
      variants.set(static_cast<unsigned>(v), AsData(row.value[v]));
    }
  }
  const auto& by_author = delta.context.by_author();
  auto context = state.initContext(static_cast<unsigned>(by_author.size()));
  unsigned i = 0;
  for (const auto& [author, dots] : by_author) {
    auto entry = context[i++];
    entry.setAuthor(AsData(author.view()));
    auto ranges = entry.initRanges(static_cast<unsigned>(dots.ranges().size() * 2));
    unsigned k = 0;
    for (const Range& r : dots.ranges()) {
      ranges.set(k++, r.first);
      ranges.set(k++, r.last);
    }
  }
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  kj::ArrayPtr<const kj::byte> bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

absl::StatusOr<Delta> DecodeCanonical(absl::string_view bytes, size_t max_bytes,
                                      size_t max_variants) {
  if (bytes.size() > max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("state encoding of ", bytes.size(), " bytes is over the limit of ", max_bytes));
  }
  if (bytes.size() % sizeof(capnp::word) != 0) {
    return absl::InvalidArgumentError("state encoding is not a whole number of 8-byte words");
  }
  // FlatArrayMessageReader needs word-aligned memory.
  kj::Array<capnp::word> words = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
  if (!bytes.empty()) std::memcpy(words.begin(), bytes.data(), bytes.size());
  capnp::ReaderOptions options;
  // Every word may be traversed once; zero-sized list elements count as one
  // word each, so a small message cannot make us loop for long.
  options.traversalLimitInWords = words.size() + 1;
  options.nestingLimit = 8;
  Delta delta;
  try {
    capnp::FlatArrayMessageReader reader(words.asPtr(), options);
    auto state = reader.getRoot<schema::State>();
    if (state.getFormatVersion() > kCanonicalFormatVersion) {
      return absl::UnimplementedError(absl::StrCat(
          "state format version ", state.getFormatVersion(), " is newer than this build reads"));
    }
    if (state.getFormatVersion() != kCanonicalFormatVersion) {
      return absl::InvalidArgumentError("state format version is missing");
    }
    auto rows = state.getRows();
    delta.rows.reserve(rows.size());
    for (auto r : rows) {
      Row row;
      absl::StatusOr<Path> path = Path::FromEncoded(AsView(r.getPath()));
      if (!path.ok()) return path.status();
      row.key.path = *std::move(path);
      if (r.getFacet() >= kFacetCount) return absl::InvalidArgumentError("unknown row facet");
      row.key.facet = static_cast<Facet>(r.getFacet());
      row.key.element = std::string(AsView(r.getElement()));
      absl::StatusOr<AuthorKey> author = AuthorKey::FromBytes(AsView(r.getAuthor()));
      if (!author.ok()) return author.status();
      row.key.dot = Dot{*author, r.getN()};
      auto variants = r.getVariants();
      if (variants.size() > max_variants) {
        return absl::InvalidArgumentError("row has too many variants");
      }
      for (auto v : variants) row.value.push_back(std::string(AsView(v)));
      delta.rows.push_back(std::move(row));
    }
    for (auto entry : state.getContext()) {
      absl::StatusOr<AuthorKey> author = AuthorKey::FromBytes(AsView(entry.getAuthor()));
      if (!author.ok()) return author.status();
      auto ranges = entry.getRanges();
      if (ranges.size() % 2 != 0 || ranges.size() == 0) {
        return absl::InvalidArgumentError("context ranges are not first/last pairs");
      }
      if (!delta.context.empty() && !(delta.context.by_author().rbegin()->first < *author)) {
        return absl::InvalidArgumentError("context authors are not sorted and distinct");
      }
      uint64_t prev_last = 0;
      RangeSet dots;
      for (unsigned k = 0; k < ranges.size(); k += 2) {
        const uint64_t first = ranges[k];
        const uint64_t last = ranges[k + 1];
        if (first == 0 || first > last || last > kDotMax || (k > 0 && first <= prev_last + 1)) {
          return absl::InvalidArgumentError("context ranges are not sorted, disjoint and in range");
        }
        dots.Insert(first, last);
        prev_last = last;
      }
      delta.context.InsertAll(*author, dots);
    }
  } catch (const kj::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed state encoding: ", e.getDescription().cStr()));
  }
  if (absl::Status s = ValidateDelta(delta, max_variants); !s.ok()) return s;
  return delta;
}

}  // namespace edgesync::crdt
