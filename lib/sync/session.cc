// The public Session API over transport::SyncSession and ReplicaSyncStore.

#include "edgesync/session.h"

#include <algorithm>

#include "lib/sync/replica_sync_store.h"
#include "transport/sync_session.h"

namespace edgesync {

namespace internal {

class SessionCore {
 public:
  SessionCore(std::shared_ptr<ReplicaCore> replica) : store_(std::move(replica)) {}
  ReplicaSyncStore store_;
  std::unique_ptr<transport::SyncSession> session_;
};

}  // namespace internal

namespace {

SessionStats ToPublic(const transport::SessionStats& s) {
  SessionStats out;
  out.messages_sent = s.messages_sent;
  out.bytes_sent = s.bytes_sent;
  out.messages_received = s.messages_received;
  out.bytes_received = s.bytes_received;
  out.flights_sent = s.flights_sent;
  out.flights_received = s.flights_received;
  out.rounds = s.rounds;
  out.batches_sent = s.batches_sent;
  out.batches_applied = s.batches_applied;
  out.batches_duplicate = s.batches_duplicate;
  out.batches_rejected = s.batches_rejected;
  out.batches_withheld = s.batches_withheld;
  out.rounds_idle = s.rounds_idle;
  out.documents_listed = s.documents_listed;
  out.drill_depths = s.drill_depths;
  out.peer_clock_skewed = s.peer_clock_skewed;
  return out;
}

}  // namespace

Session::Session(std::unique_ptr<internal::SessionCore> core) : core_(std::move(core)) {}
Session::~Session() = default;

absl::StatusOr<std::unique_ptr<Session>> Session::Create(Replica& replica,
                                                         const SessionOptions& options) {
  auto core = std::make_unique<internal::SessionCore>(replica.core_ptr());
  transport::SessionOptions o;
  o.interest = options.interest;
  o.max_message_bytes = options.max_message_bytes;
  o.auto_rounds = options.auto_rounds;
  absl::StatusOr<std::unique_ptr<transport::SyncSession>> s =
      transport::SyncSession::Create(&core->store_, std::move(o));
  if (!s.ok()) return s.status();
  core->session_ = *std::move(s);
  return std::unique_ptr<Session>(new Session(std::move(core)));
}

absl::StatusOr<std::optional<std::string>> Session::Next() { return core_->session_->NextMessage(); }
absl::Status Session::Receive(absl::string_view message) { return core_->session_->Receive(message); }
bool Session::synced() const { return core_->session_->synced(); }
absl::Status Session::failure() const { return core_->session_->failure(); }
std::vector<std::string> Session::mismatched_documents() const {
  return core_->session_->mismatched_documents();
}
SessionStats Session::stats() const {
  SessionStats out = ToPublic(core_->session_->stats());
  if (std::optional<int64_t> offset = core_->session_->peer_clock_offset_ms(); offset.has_value()) {
    out.peer_clock_known = true;
    out.peer_clock_offset_ms = *offset;
  }
  return out;
}
void Session::RequestRound() { core_->session_->RequestRound(); }

absl::StatusOr<LocalSyncResult> SyncLocal(Replica& a, Replica& b, const SessionOptions& options) {
  absl::StatusOr<std::unique_ptr<Session>> sa = Session::Create(a, options);
  if (!sa.ok()) return sa.status();
  absl::StatusOr<std::unique_ptr<Session>> sb = Session::Create(b, options);
  if (!sb.ok()) return sb.status();
  // Alternate one message each way, as on a full-duplex link, until both
  // sides are quiet.
  for (bool busy = true; busy;) {
    busy = false;
    absl::StatusOr<std::optional<std::string>> ma = (*sa)->Next();
    if (!ma.ok()) return ma.status();
    absl::StatusOr<std::optional<std::string>> mb = (*sb)->Next();
    if (!mb.ok()) return mb.status();
    // A round whose hashes differ is reported in the result; a failed
    // session is an error.
    if (ma->has_value()) {
      busy = true;
      (void)(*sb)->Receive(**ma);
      if (!(*sb)->failure().ok()) return (*sb)->failure();
    }
    if (mb->has_value()) {
      busy = true;
      (void)(*sa)->Receive(**mb);
      if (!(*sa)->failure().ok()) return (*sa)->failure();
    }
  }
  LocalSyncResult result;
  result.a = (*sa)->stats();
  result.b = (*sb)->stats();
  result.synced = (*sa)->synced() && (*sb)->synced();
  result.mismatched_documents = (*sa)->mismatched_documents();
  for (const std::string& d : (*sb)->mismatched_documents()) {
    if (std::find(result.mismatched_documents.begin(), result.mismatched_documents.end(), d) ==
        result.mismatched_documents.end()) {
      result.mismatched_documents.push_back(d);
    }
  }
  return result;
}

}  // namespace edgesync
