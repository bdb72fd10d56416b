// Fuzzes the sync session's receiving side: the input is a sequence of
// messages (each a 2-byte big-endian length, then the bytes) fed to one
// session over an empty store, with the session's own messages drained in
// between, as a hostile peer would drive it. Properties: no crash or
// unbounded work; every message the session produces respects the 512-byte
// limit before the peer's hello; once failed, a session stays failed.

#include <cstddef>
#include <cstdint>

#include "crdt/check.h"
#include "transport/sync_session.h"

namespace {

using edgesync::transport::BatchOutcome;
using edgesync::transport::BatchRef;
using edgesync::transport::Holdings;
using edgesync::transport::DocumentSummary;
using edgesync::transport::PartialTransfers;

// A replica with no documents that refuses every batch.
class EmptyStore : public edgesync::transport::SyncStore {
 public:
  absl::Status ListDocuments(const std::vector<std::string>&,
                             absl::FunctionRef<bool(const DocumentSummary&)>) override {
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> DocumentHash(absl::string_view) override {
    return std::string(edgesync::transport::kDocumentHashBytes, '\0');
  }
  absl::Status PlanBatches(absl::string_view, const Holdings&, bool, std::vector<BatchRef>*) override {
    return absl::OkStatus();
  }
  absl::StatusOr<std::string> FetchBatch(const BatchRef&) override {
    return absl::NotFoundError("no batches");
  }
  BatchOutcome ApplyBatch(absl::string_view, std::string* reason, uint64_t* changes) override {
    *reason = "refused";
    *changes = 0;
    return BatchOutcome::kRejected;
  }
  absl::StatusOr<std::vector<edgesync::crdt::AuthorKey>> RefusedAuthors() override {
    return std::vector<edgesync::crdt::AuthorKey>();
  }
  absl::StatusOr<uint64_t> ChangeSeq() override { return uint64_t{0}; }
  absl::Status EnsureDurable() override { return absl::OkStatus(); }
  PartialTransfers& partials() override { return partials_; }

 private:
  // Small, so hostile chunk lengths hit the limit quickly.
  PartialTransfers partials_{2, 1u << 20};
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  EmptyStore store;
  edgesync::transport::SessionOptions options;
  options.max_message_bytes = 4096;
  auto session = edgesync::transport::SyncSession::Create(&store, options);
  ES_CHECK(session.ok());
  bool failed = false;
  size_t offset = 0;
  for (int steps = 0; steps < 64 && offset + 2 <= size; ++steps) {
    const size_t len = (size_t{data[offset]} << 8) | data[offset + 1];
    offset += 2;
    const size_t take = len < size - offset ? len : size - offset;
    const absl::Status s =
        (*session)->Receive(absl::string_view(reinterpret_cast<const char*>(data + offset), take));
    offset += take;
    if (failed) ES_CHECK(!s.ok());
    failed = failed || !(*session)->failure().ok();
    for (int out = 0; out < 16; ++out) {
      absl::StatusOr<std::optional<std::string>> m = (*session)->NextMessage();
      if (!m.ok() || !m->has_value()) break;
      ES_CHECK((*m)->size() <= options.max_message_bytes);
    }
  }
  return 0;
}
