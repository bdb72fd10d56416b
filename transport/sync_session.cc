#include "transport/sync_session.h"

#include <sodium.h>

#include <algorithm>
#include <limits>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "crdt/check.h"
#include "crdt/size_limits.h"
#include "crdt/varint.h"
#include "transport/capnp_util.h"
#include "transport/sync.capnp.h"

namespace edgesync::transport {

namespace {

// Capnp bytes around a Data payload (segment table, root struct, padding)
// stay below this; payloads are sized to leave it free.
constexpr size_t kMessageSlack = 64;
// Bytes a chunk message spends besides its data.
constexpr size_t kChunkSlack = 128;
// A hello's bytes besides its interest prefixes, partials and refused
// authors (root, pointers, the fixed fields and their padding, the summary).
constexpr size_t kHelloFixedBytes = 128;

size_t RoundUp8(size_t n) { return (n + 7) & ~size_t{7}; }

absl::Status Violation(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("sync protocol violation: ", what));
}

std::string Encode(capnp::MallocMessageBuilder& message) { return MessageToBytes(message); }

}  // namespace

absl::Status ValidateSessionOptions(const SessionOptions& options) {
  if (options.max_message_bytes < kSyncMessageBytesMin ||
      options.max_message_bytes > kSyncMessageBytesMax) {
    return absl::InvalidArgumentError(absl::StrCat("max_message_bytes must be between ",
                                                   kSyncMessageBytesMin, " and ",
                                                   kSyncMessageBytesMax));
  }
  if (options.pending_bytes_max < std::max<uint64_t>(64u << 10, kBatchBytesMax)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pending_bytes_max must be at least the largest batch (", kBatchBytesMax, " bytes)"));
  }
  if (options.interest.size() > kInterestPrefixesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("at most ", kInterestPrefixesMax, " interest prefixes"));
  }
  size_t interest_bytes = 0;
  for (const std::string& p : options.interest) {
    if (p.size() > crdt::kDocumentIdBytesMax) {
      return absl::InvalidArgumentError("an interest prefix is longer than a document id");
    }
    interest_bytes += RoundUp8(p.size() + 1) + 8;
  }
  // The hello must fit the smallest message every peer accepts.
  if (interest_bytes + kHelloFixedBytes > kSyncMessageBytesMin) {
    return absl::InvalidArgumentError(
        "interest prefixes are too long to fit the first message (512 bytes)");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SyncSession>> SyncSession::Create(SyncStore* store,
                                                                 SessionOptions options) {
  if (absl::Status s = ValidateSessionOptions(options); !s.ok()) return s;
  if (options.interest.empty()) options.interest = {""};
  std::sort(options.interest.begin(), options.interest.end());
  options.interest.erase(std::unique(options.interest.begin(), options.interest.end()),
                         options.interest.end());
  return std::unique_ptr<SyncSession>(new SyncSession(store, std::move(options)));
}

SyncSession::SyncSession(SyncStore* store, SessionOptions options)
    : store_(store), options_(std::move(options)), partials_owner_(store->partials().NewOwner()) {}

SyncSession::~SyncSession() { store_->partials().Park(partials_owner_); }

absl::Status SyncSession::Fail(absl::Status status) {
  if (failure_.ok()) failure_ = status;
  return failure_;
}

void SyncSession::Push(std::string batch) { pushes_.push_back(std::move(batch)); }

unsigned SyncSession::MessageWords() const {
  return static_cast<unsigned>(std::max(OutgoingLimit(), kSyncMessageBytesMin) / sizeof(capnp::word) + 1);
}

size_t SyncSession::OutgoingLimit() const {
  const size_t peer = peer_max_message_bytes_ == 0 ? kSyncMessageBytesMin : peer_max_message_bytes_;
  return std::min(options_.max_message_bytes, peer);
}

bool SyncSession::SharedDocument(absl::string_view id) const {
  auto matches = [id](const std::vector<std::string>& prefixes) {
    return std::any_of(prefixes.begin(), prefixes.end(),
                       [id](const std::string& p) { return absl::StartsWith(id, p); });
  };
  return matches(options_.interest) && matches(peer_interest_);
}

void SyncSession::StartRound() {
  ++round_;
  round_done_ = false;
  round_requested_ = false;
  synced_ = false;
  mismatched_.clear();
  out_ = Out::kHello;
  flight_messages_sent_ = 0;
  snapshot_taken_ = false;
  my_documents_.clear();
  my_documents_next_ = 0;
  sending_.reset();
  my_summary_.clear();
  listing_skipped_ = false;
  listing_decided_ = false;
  my_tree_ = DocumentTree();
  my_keys_.clear();
  drilling_ = drill_done_ = false;
  drill_depth_ = 0;
  opened_.clear();
  my_children_.clear();
  my_children_sent_ = 0;
  peer_children_.clear();
  listed_nodes_.clear();
  compared_ = false;
  differing_.clear();
  differing_next_ = 0;
  plan_.clear();
  plan_next_ = 0;
  batches_sent_in_flight_ = 0;
  withheld_in_round_ = 0;
  withheld_authors_.clear();
  next_batch_.reset();
  peer_hello_ = false;
  peer_interest_.clear();
  peer_partials_.clear();
  peer_refused_.clear();
  peer_summary_.clear();
  peer_document_count_ = 0;
  peer_documents_.clear();
  peer_documents_bytes_ = 0;
  peer_batch_ranges_ = 0;
  peer_flight1_done_ = peer_flight2_done_ = peer_flight3_done_ = false;
  peer_flight_messages_ = 0;
  peer_batches_in_flight_ = 0;
  peer_hashes_.clear();
  refused_in_round_ = 0;
  first_refusal_.clear();
}

// ------------------------------------------------------------ outbound

absl::StatusOr<std::optional<std::string>> SyncSession::NextMessage() {
  absl::StatusOr<std::optional<std::string>> out = ProduceMessage();
  // A store error leaves the round half-advanced: the session ends (the
  // peer is told why) and a new one starts from scratch.
  if (!out.ok()) return Fail(out.status());
  return out;
}

absl::StatusOr<std::optional<std::string>> SyncSession::ProduceMessage() {
  if (!failure_.ok()) {
    if (abort_sent_) return std::optional<std::string>();
    abort_sent_ = true;
    capnp::MallocMessageBuilder message(MessageWords());
    auto m = message.initRoot<schema::SyncMessage>();
    m.setRound(round_);
    const std::string why(failure_.message().substr(0, 400));
    m.setAbort(capnp::Text::Reader(why.data(), why.size()));
    return std::optional<std::string>(Encode(message));
  }
  absl::StatusOr<std::optional<std::string>> out;
  // Until the peer's hello says how large a message it takes, pushes wait
  // (the hello comes first in every round).
  if (!pushes_.empty() && peer_max_message_bytes_ != 0) {
    absl::StatusOr<std::string> push = PushMessage();
    if (!push.ok()) return push.status();
    out = std::optional<std::string>(*std::move(push));
    if (out->has_value() && (*out)->empty()) out = std::optional<std::string>();
  }
  if (!out.ok() || !out->has_value()) {
    if (round_done_) {
      bool start = round_ == 0 || round_requested_;
      if (!start && options_.auto_rounds) {
        absl::StatusOr<uint64_t> seq = store_->ChangeSeq();
        if (!seq.ok()) return seq.status();
        // Anything since the last snapshot, including what the last round
        // applied: one more round shows whether it still differs.
        start = *seq != change_seq_at_snapshot_;
      }
      if (!start) return std::optional<std::string>();
      StartRound();
    }
    out = NextInRound();
  }
  if (!out.ok()) return out.status();
  if (out->has_value()) {
    ES_CHECK((*out)->size() <= std::max(OutgoingLimit(), kSyncMessageBytesMin));
    ++stats_.messages_sent;
    stats_.bytes_sent += (*out)->size();
  }
  return out;
}

absl::StatusOr<std::string> SyncSession::PushMessage() {
  if (absl::Status s = store_->EnsureDurable(); !s.ok()) return s;
  const size_t limit = OutgoingLimit();
  capnp::MallocMessageBuilder message(MessageWords());
  auto m = message.initRoot<schema::SyncMessage>();
  m.setRound(round_);
  std::vector<std::string> taken;
  size_t size = kMessageSlack;
  while (!pushes_.empty()) {
    const size_t cost = 8 + RoundUp8(pushes_.front().size());
    if (size + cost > limit) {
      // A batch that never fits one message is left to the next round's
      // chunked flight 2.
      if (taken.empty()) pushes_.pop_front();
      if (taken.empty()) continue;
      break;
    }
    size += cost;
    taken.push_back(std::move(pushes_.front()));
    pushes_.pop_front();
  }
  if (taken.empty()) return std::string();
  auto list = m.initPush(static_cast<unsigned>(taken.size()));
  for (size_t i = 0; i < taken.size(); ++i) list.set(static_cast<unsigned>(i), AsCapnpData(taken[i]));
  stats_.pushes_sent += taken.size();
  return Encode(message);
}

absl::StatusOr<std::optional<std::string>> SyncSession::NextInRound() {
  switch (out_) {
    case Out::kHello: {
      if (!snapshot_taken_) {
        if (absl::Status s = TakeSnapshot(); !s.ok()) return s;
      }
      absl::StatusOr<std::string> m = HelloMessage();
      if (!m.ok()) return m.status();
      out_ = Out::kDocuments;
      ++flight_messages_sent_;
      if (peer_hello_ && !listing_decided_) DecideListing();
      return std::optional<std::string>(*std::move(m));
    }
    case Out::kDigests: {
      absl::StatusOr<std::string> m = DigestsMessage();
      if (!m.ok()) return m.status();
      ++flight_messages_sent_;
      if (my_children_sent_ == my_children_.size()) {
        out_ = Out::kWaitPeerDigests;
        MaybeDescend();
      }
      return std::optional<std::string>(*std::move(m));
    }
    case Out::kDocuments: {
      // The listing waits for the peer's hello (DecideListing).
      if (!listing_decided_) return std::optional<std::string>();
      if (drilling_ && !drill_done_) {
        out_ = Out::kDigests;
        return NextInRound();
      }
      if (my_documents_next_ >= my_documents_.size()) {
        out_ = Out::kEndFlight1;
        return NextInRound();
      }
      absl::StatusOr<std::string> m = DocumentsMessage();
      if (!m.ok()) return m.status();
      ++flight_messages_sent_;
      return std::optional<std::string>(*std::move(m));
    }
    case Out::kEndFlight1: {
      absl::StatusOr<std::string> m = EndFlightMessage(1);
      if (!m.ok()) return m.status();
      out_ = Out::kWaitPeerFlight1;
      if (peer_flight1_done_) {
        if (absl::Status s = Compare(); !s.ok()) return s;
      }
      return std::optional<std::string>(*std::move(m));
    }
    case Out::kWaitPeerDigests:
    case Out::kWaitPeerFlight1:
    case Out::kWaitPeerFlight2:
    case Out::kDone:
      if (out_ == Out::kWaitPeerFlight2 && peer_flight2_done_) {
        out_ = Out::kHashes;
        return NextInRound();
      }
      return std::optional<std::string>();
    case Out::kBatches: {
      absl::StatusOr<std::optional<std::string>> m = BatchesMessage();
      if (!m.ok()) return m.status();
      if (!m->has_value()) {
        out_ = Out::kEndFlight2;
        return NextInRound();
      }
      ++flight_messages_sent_;
      return m;
    }
    case Out::kEndFlight2: {
      absl::StatusOr<std::string> m = EndFlightMessage(2);
      if (!m.ok()) return m.status();
      out_ = Out::kWaitPeerFlight2;
      return std::optional<std::string>(*std::move(m));
    }
    case Out::kHashes: {
      if (differing_next_ >= differing_.size()) {
        out_ = Out::kEndFlight3;
        return NextInRound();
      }
      absl::StatusOr<std::string> m = HashesMessage();
      if (!m.ok()) return m.status();
      ++flight_messages_sent_;
      return std::optional<std::string>(*std::move(m));
    }
    case Out::kEndFlight3: {
      absl::StatusOr<std::string> m = EndFlightMessage(3);
      if (!m.ok()) return m.status();
      out_ = Out::kDone;
      MaybeFinishRound();
      return std::optional<std::string>(*std::move(m));
    }
  }
  return std::optional<std::string>();
}

absl::Status SyncSession::TakeSnapshot() {
  snapshot_taken_ = true;
  // Changes after this point start another round (auto_rounds).
  absl::StatusOr<uint64_t> seq = store_->ChangeSeq();
  if (!seq.ok()) return seq.status();
  change_seq_at_snapshot_ = *seq;
  changes_applied_since_snapshot_ = 0;
  crypto_generichash_state state;
  crypto_generichash_init(&state, nullptr, 0, kSummaryBytes);
  auto absorb = [&state](absl::string_view bytes) {
    crypto_generichash_update(&state, reinterpret_cast<const unsigned char*>(bytes.data()),
                              bytes.size());
  };
  absl::Status s = store_->ListDocuments(options_.interest, [&](const DocumentSummary& d) {
    // The canonical form of what Compare() looks at: full keys, not session
    // numbers; per author the seqs covered and the log's size class, not
    // how the seqs split into batches.
    std::string entry;
    crdt::AppendLengthPrefixed(&entry, d.id);
    entry += d.hash;
    crdt::AppendVarint(&entry, d.holdings.size());
    for (const auto& [author, batches] : d.holdings) {
      entry.append(author.view().data(), author.view().size());
      entry.push_back(static_cast<char>(batches.size_class));
      crdt::RangeSet seqs;
      for (const crdt::Range& r : batches.ranges) seqs.Insert(r.first, r.last);
      crdt::AppendVarint(&entry, seqs.ranges().size());
      for (const crdt::Range& r : seqs.ranges()) {
        crdt::AppendVarint(&entry, r.first);
        crdt::AppendVarint(&entry, r.last);
      }
    }
    absorb(entry);
    const uint64_t key = DocumentTreeKey(d.id);
    my_tree_.Add(key, DocumentEntryDigest(entry));
    my_keys_.push_back(key);
    my_documents_.push_back(d);
    return true;
  });
  if (!s.ok()) return s;
  my_tree_.Finish();
  my_summary_.resize(kSummaryBytes);
  crypto_generichash_final(&state, reinterpret_cast<unsigned char*>(my_summary_.data()),
                           my_summary_.size());
  return absl::OkStatus();
}

absl::StatusOr<std::string> SyncSession::HelloMessage() {
  capnp::MallocMessageBuilder message(MessageWords());
  auto m = message.initRoot<schema::SyncMessage>();
  m.setRound(round_);
  auto hello = m.initHello();
  hello.setProtocolVersion(kSyncProtocolVersion);
  hello.setOldestVersion(kSyncProtocolVersionOldest);
  hello.setSummary(AsCapnpData(my_summary_));
  hello.setMaxMessageBytes(static_cast<uint32_t>(options_.max_message_bytes));
  hello.setWallMillis(store_->WallMillis());
  hello.setDocumentCount(static_cast<uint32_t>(
      std::min<size_t>(my_documents_.size(), std::numeric_limits<uint32_t>::max())));
  auto interest = hello.initInterest(static_cast<unsigned>(options_.interest.size()));
  size_t size = kHelloFixedBytes;
  for (size_t i = 0; i < options_.interest.size(); ++i) {
    const std::string& p = options_.interest[i];
    interest.set(static_cast<unsigned>(i), capnp::Text::Reader(p.data(), p.size()));
    size += RoundUp8(p.size() + 1) + 8;
  }
  // Announce partly received batches, as many as fit.
  std::vector<PartialTransfers::Held> held =
      store_->partials().Announce(partials_owner_, kPartialsAnnouncedMax);
  size_t fit = 0;
  while (fit < held.size() && size + 64 <= OutgoingLimit()) {
    size += 64;
    ++fit;
  }
  auto partials = hello.initPartials(static_cast<unsigned>(fit));
  for (size_t i = 0; i < fit; ++i) {
    partials[static_cast<unsigned>(i)].setTransferId(AsCapnpData(held[i].id));
    partials[static_cast<unsigned>(i)].setBytesHeld(held[i].bytes);
  }
  // Then the authors this side refuses, most recent first, as many as fit.
  absl::StatusOr<std::vector<crdt::AuthorKey>> refused = store_->RefusedAuthors();
  if (!refused.ok()) return refused.status();
  std::string keys;
  for (const crdt::AuthorKey& k : *refused) {
    if (keys.size() == kRefusedAuthorsMax * crdt::kAuthorKeyBytes ||
        size + keys.size() + crdt::kAuthorKeyBytes > OutgoingLimit()) {
      break;
    }
    keys.append(k.view().data(), k.view().size());
  }
  if (!keys.empty()) hello.setRefusedAuthors(AsCapnpData(keys));
  return Encode(message);
}

absl::StatusOr<std::string> SyncSession::DocumentsMessage() {
  const size_t budget = OutgoingLimit() - kMessageSlack;
  std::string new_authors;
  uint64_t new_author_count = 0;
  std::string entries;
  uint64_t entry_count = 0;
  auto author_number = [&](const crdt::AuthorKey& a) {
    auto it = out_authors_.find(a);
    if (it != out_authors_.end()) return it->second;
    const uint32_t n = static_cast<uint32_t>(out_authors_.size());
    out_authors_.emplace(a, n);
    new_authors.append(reinterpret_cast<const char*>(a.bytes.data()), crdt::kAuthorKeyBytes);
    ++new_author_count;
    return n;
  };
  // Encodes as much of the next document as fits; a document whose
  // batches do not fit continues in the next message.
  while (my_documents_next_ < my_documents_.size()) {
    // A working copy: its holdings are consumed as they are sent, while the
    // snapshot stays whole for Compare().
    if (!sending_.has_value()) sending_ = my_documents_[my_documents_next_];
    DocumentSummary& d = *sending_;
    std::string head;
    crdt::AppendLengthPrefixed(&head, d.id);
    head += d.hash;
    const size_t fixed = 2 * 10 + head.size() + 10;  // counts' varints, head, author count
    if (new_authors.size() + entries.size() + fixed > budget) break;
    std::string body;
    uint64_t authors = 0;
    auto it = d.holdings.begin();
    while (it != d.holdings.end()) {
      const bool known = out_authors_.contains(it->first);
      const size_t saved_new = new_authors.size();
      const uint64_t saved_count = new_author_count;
      std::string item;
      crdt::AppendVarint(&item, author_number(it->first));
      for (int shift = 56; shift >= 0; shift -= 8) {
        item.push_back(static_cast<char>((it->second.tag >> shift) & 0xff));
      }
      item.push_back(static_cast<char>(it->second.size_class));
      // Computed after author_number(): a newly introduced author's key
      // already counts against the budget.
      const size_t used = fixed + new_authors.size() + entries.size() + body.size();
      const size_t room = used >= budget ? 0 : budget - used;
      std::vector<crdt::Range>& ranges = it->second.ranges;
      std::string encoded;
      size_t taken = 0;
      uint64_t previous_first = 0;
      while (taken < ranges.size()) {
        std::string one;
        crdt::AppendVarint(&one, ranges[taken].first - previous_first);
        crdt::AppendVarint(&one, ranges[taken].last - ranges[taken].first);
        if (item.size() + 10 + encoded.size() + one.size() > room) break;
        encoded += one;
        previous_first = ranges[taken].first;
        ++taken;
      }
      if (taken == 0 && !ranges.empty()) {
        if (!known) {
          // Undo the author introduction that did not make it in.
          new_authors.resize(saved_new);
          new_author_count = saved_count;
          out_authors_.erase(it->first);
        }
        break;
      }
      body += item;
      crdt::AppendVarint(&body, taken);
      body += encoded;
      ++authors;
      if (taken < ranges.size()) {
        // The rest of this author's batches go in the next message.
        ranges.erase(ranges.begin(), ranges.begin() + static_cast<ptrdiff_t>(taken));
        break;
      }
      it = d.holdings.erase(it);
    }
    if (authors == 0 && !d.holdings.empty() && entry_count > 0) break;
    entries += head;
    crdt::AppendVarint(&entries, authors);
    entries += body;
    ++entry_count;
    if (d.holdings.empty()) {
      sending_.reset();
      ++my_documents_next_;
      ++stats_.documents_listed;
    } else {
      break;  // the rest of this document goes in the next message
    }
  }
  std::string payload;
  crdt::AppendVarint(&payload, new_author_count);
  payload += new_authors;
  crdt::AppendVarint(&payload, entry_count);
  payload += entries;
  capnp::MallocMessageBuilder message(MessageWords());
  auto m = message.initRoot<schema::SyncMessage>();
  m.setRound(round_);
  m.setDocuments(AsCapnpData(payload));
  return Encode(message);
}

void SyncSession::DecideListing() {
  listing_decided_ = true;
  // Different interests: each side lists all of its own, as the shared
  // documents are not the same on both sides.
  if (peer_interest_ != options_.interest) return;
  // Equal summaries: both sides hold the same, and neither lists.
  if (peer_summary_ == my_summary_) {
    listing_skipped_ = true;
    my_documents_next_ = my_documents_.size();
    return;
  }
  if (ListWhole(NodeDigest{my_documents_.size(), 0}, NodeDigest{peer_document_count_, 0}, 0)) return;
  drilling_ = true;
  opened_ = {TreeNode{}};
  my_children_ = my_tree_.ChildDigests(opened_);
}

void SyncSession::MaybeDescend() {
  if (out_ != Out::kWaitPeerDigests || peer_children_.size() != my_children_.size()) return;
  std::vector<TreeNode> next;
  Descend(opened_, my_children_, peer_children_, &next, &listed_nodes_);
  ++drill_depth_;
  ++stats_.drill_depths;
  my_children_sent_ = 0;
  peer_children_.clear();
  if (!next.empty()) {
    opened_ = std::move(next);
    my_children_ = my_tree_.ChildDigests(opened_);
    out_ = Out::kDigests;
    return;
  }
  drill_done_ = true;
  opened_.clear();
  my_children_.clear();
  std::sort(listed_nodes_.begin(), listed_nodes_.end(),
            [](const TreeNode& a, const TreeNode& b) { return a.lo < b.lo; });
  std::vector<DocumentSummary> listed;
  for (size_t i = 0; i < my_documents_.size(); ++i) {
    if (UnderAny(listed_nodes_, my_keys_[i])) listed.push_back(std::move(my_documents_[i]));
  }
  my_documents_ = std::move(listed);
  my_keys_.clear();
  out_ = Out::kDocuments;
}

absl::StatusOr<std::string> SyncSession::DigestsMessage() {
  const size_t budget = OutgoingLimit() - kMessageSlack;
  std::string payload;
  crdt::AppendVarint(&payload, static_cast<uint64_t>(drill_depth_ + 1));
  while (my_children_sent_ < my_children_.size()) {
    const NodeDigest& d = my_children_[my_children_sent_];
    std::string entry;
    crdt::AppendVarint(&entry, d.count);
    if (d.count != 0) {
      for (int shift = 56; shift >= 0; shift -= 8) entry.push_back(static_cast<char>((d.digest >> shift) & 0xff));
    }
    if (payload.size() + entry.size() > budget) break;
    payload += entry;
    ++my_children_sent_;
  }
  capnp::MallocMessageBuilder message(MessageWords());
  auto m = message.initRoot<schema::SyncMessage>();
  m.setRound(round_);
  m.setDigests(AsCapnpData(payload));
  return Encode(message);
}

absl::StatusOr<std::string> SyncSession::EndFlightMessage(uint8_t flight) {
  capnp::MallocMessageBuilder message(MessageWords());
  auto m = message.initRoot<schema::SyncMessage>();
  m.setRound(round_);
  auto end = m.initEndOfFlight();
  end.setFlight(flight);
  end.setMessages(flight_messages_sent_);
  end.setBatches(flight == 2 ? batches_sent_in_flight_ : 0);
  flight_messages_sent_ = 0;
  ++stats_.flights_sent;
  return Encode(message);
}

absl::StatusOr<std::optional<std::string>> SyncSession::BatchesMessage() {
  const size_t limit = OutgoingLimit();
  capnp::MallocMessageBuilder message(MessageWords());
  auto m = message.initRoot<schema::SyncMessage>();
  m.setRound(round_);
  if (chunk_batch_.empty()) {
    std::vector<std::string> taken;
    size_t size = kMessageSlack;
    while (true) {
      if (!next_batch_.has_value()) {
        if (plan_next_ >= plan_.size()) break;
        absl::StatusOr<std::string> bytes = store_->FetchBatch(plan_[plan_next_++]);
        if (absl::IsNotFound(bytes.status())) continue;
        if (!bytes.ok()) return bytes.status();
        next_batch_ = *std::move(bytes);
      }
      const size_t cost = 8 + RoundUp8(next_batch_->size());
      if (size + cost <= limit) {
        size += cost;
        taken.push_back(*std::move(next_batch_));
        next_batch_.reset();
        continue;
      }
      if (!taken.empty()) break;
      // Too large for any message: send it in chunks, resuming where the
      // peer said it stopped.
      chunk_batch_ = *std::move(next_batch_);
      next_batch_.reset();
      chunk_id_ = TransferId(chunk_batch_);
      auto held = peer_partials_.find(chunk_id_);
      chunk_offset_ = held == peer_partials_.end() ? 0 : std::min<uint64_t>(held->second, chunk_batch_.size());
      ++batches_sent_in_flight_;
      ++stats_.batches_sent;
      stats_.batch_bytes_sent += chunk_batch_.size();
      break;
    }
    if (chunk_batch_.empty()) {
      if (taken.empty()) return std::optional<std::string>();
      auto list = m.initBatches(static_cast<unsigned>(taken.size()));
      for (size_t i = 0; i < taken.size(); ++i) {
        list.set(static_cast<unsigned>(i), AsCapnpData(taken[i]));
        stats_.batch_bytes_sent += taken[i].size();
      }
      batches_sent_in_flight_ += static_cast<uint32_t>(taken.size());
      stats_.batches_sent += taken.size();
      return std::optional<std::string>(Encode(message));
    }
  }
  const size_t piece = std::min<uint64_t>((limit - kChunkSlack) & ~size_t{7},
                                          chunk_batch_.size() - chunk_offset_);
  auto chunk = m.initChunk();
  chunk.setTransferId(AsCapnpData(chunk_id_));
  chunk.setTotalBytes(chunk_batch_.size());
  chunk.setOffset(chunk_offset_);
  chunk.setData(AsCapnpData(absl::string_view(chunk_batch_).substr(chunk_offset_, piece)));
  chunk_offset_ += piece;
  if (chunk_offset_ >= chunk_batch_.size()) {
    chunk_batch_.clear();
    chunk_id_.clear();
    chunk_offset_ = 0;
  }
  return std::optional<std::string>(Encode(message));
}

absl::StatusOr<std::string> SyncSession::HashesMessage() {
  const size_t budget = OutgoingLimit() - kMessageSlack - 10;
  std::string entries;
  uint64_t count = 0;
  while (differing_next_ < differing_.size()) {
    const std::string& id = differing_[differing_next_];
    absl::StatusOr<std::string> hash = store_->DocumentHash(id);
    if (!hash.ok()) return hash.status();
    std::string entry;
    crdt::AppendLengthPrefixed(&entry, id);
    entry += *hash;
    if (entries.size() + entry.size() > budget) break;
    entries += entry;
    ++count;
    ++differing_next_;
  }
  std::string payload;
  crdt::AppendVarint(&payload, count);
  payload += entries;
  capnp::MallocMessageBuilder message(MessageWords());
  auto m = message.initRoot<schema::SyncMessage>();
  m.setRound(round_);
  m.setHashes(AsCapnpData(payload));
  return Encode(message);
}

absl::Status SyncSession::Compare() {
  compared_ = true;
  std::vector<std::string> ids;
  for (const DocumentSummary& d : my_documents_) ids.push_back(d.id);
  for (const auto& [id, doc] : peer_documents_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  absl::flat_hash_map<std::string, const DocumentSummary*> mine;
  for (const DocumentSummary& d : my_documents_) mine[d.id] = &d;
  for (const std::string& id : ids) {
    if (listing_skipped_ || !SharedDocument(id)) continue;
    auto m = mine.find(id);
    auto p = peer_documents_.find(id);
    // Equal state, seqs and log sizes: nothing to exchange. Equal state
    // over logs of different size classes still differs, so that a
    // compaction reaches the side holding its fragments.
    if (m != mine.end() && p != peer_documents_.end() && m->second->hash == p->second.hash &&
        SameCoverageAndSize(m->second->holdings, p->second.holdings)) {
      continue;
    }
    differing_.push_back(id);
  }
  if (differing_.empty()) {
    synced_ = true;
    if (listing_skipped_) ++stats_.rounds_idle;
    out_ = Out::kDone;
    MaybeFinishRound();
    return absl::OkStatus();
  }
  for (const std::string& id : differing_) {
    static const Holdings kNothing;
    auto p = peer_documents_.find(id);
    if (p != peer_documents_.end()) {
      if (absl::Status s = store_->NotePeerHoldings(id, p->second.holdings); !s.ok()) return s;
    }
    if (mine.find(id) == mine.end()) continue;  // nothing of it to send
    // Equivocation proofs go once per session: one proof settles an
    // author's quarantine on a document for good.
    const bool proofs = proofs_sent_.insert(id).second;
    if (absl::Status s = store_->PlanBatches(id, p == peer_documents_.end() ? kNothing : p->second.holdings,
                                             proofs, &plan_);
        !s.ok()) {
      return s;
    }
  }
  // The peer would refuse these again.
  const size_t planned = plan_.size();
  plan_.erase(std::remove_if(plan_.begin(), plan_.end(),
                             [&](const BatchRef& b) {
                               if (!peer_refused_.contains(b.author)) return false;
                               if (withheld_authors_.size() < kWithheldAuthorsNamed) {
                                 withheld_authors_.insert(b.author.Hex());
                               }
                               return true;
                             }),
              plan_.end());
  withheld_in_round_ = planned - plan_.size();
  stats_.batches_withheld += withheld_in_round_;
  if (!plan_.empty()) {
    if (absl::Status s = store_->EnsureDurable(); !s.ok()) return s;
  }
  my_documents_.clear();
  out_ = Out::kBatches;
  return absl::OkStatus();
}

void SyncSession::MaybeFinishRound() {
  if (round_done_ || !compared_ || out_ != Out::kDone) return;
  if (differing_.empty() ? !peer_flight1_done_ : !peer_flight3_done_) return;
  round_done_ = true;
  ++stats_.rounds;
  // If every change since the snapshot was this session's own applying,
  // the round already covered it: no new round for that.
  absl::StatusOr<uint64_t> seq = store_->ChangeSeq();
  if (seq.ok() && *seq == change_seq_at_snapshot_ + changes_applied_since_snapshot_) {
    change_seq_at_snapshot_ = *seq;
    changes_applied_since_snapshot_ = 0;
  }
}

// ------------------------------------------------------------ inbound

absl::Status SyncSession::CheckPeerRound(uint32_t round) {
  if (round_done_) {
    if (round != round_ + 1) {
      return Violation(absl::StrCat("message of round ", round, " after round ", round_, " ended"));
    }
    StartRound();
    return absl::OkStatus();
  }
  if (round != round_) {
    return Violation(absl::StrCat("message of round ", round, " during round ", round_));
  }
  return absl::OkStatus();
}

absl::Status SyncSession::Receive(absl::string_view bytes) {
  if (!failure_.ok()) return failure_;
  ++stats_.messages_received;
  stats_.bytes_received += bytes.size();
  if (bytes.size() > options_.max_message_bytes) {
    return Fail(absl::ResourceExhaustedError(absl::StrCat(
        "message of ", bytes.size(), " bytes is over this side's limit of ",
        options_.max_message_bytes)));
  }
  // Decode into plain values first: handlers then never see capnp readers.
  enum class Kind { kHello, kDocuments, kDigests, kBatches, kChunk, kHashes, kEnd, kPush, kAbort };
  Kind kind = Kind::kAbort;
  uint32_t round = 0;
  PeerHello hello;
  std::string payload;
  std::vector<std::string> list;
  std::string chunk_id;
  uint64_t chunk_total = 0;
  uint64_t chunk_offset = 0;
  uint8_t flight = 0;
  uint32_t flight_messages = 0;
  uint32_t flight_batches = 0;
  absl::Status parsed = ReadCapnp(bytes, [&](capnp::MessageReader& reader) -> absl::Status {
    auto m = reader.getRoot<schema::SyncMessage>();
    round = m.getRound();
    switch (m.which()) {
      case schema::SyncMessage::HELLO: {
        kind = Kind::kHello;
        auto h = m.getHello();
        hello.version = h.getProtocolVersion();
        hello.oldest_version = h.getOldestVersion();
        hello.summary = std::string(AsView(h.getSummary()));
        hello.max_message_bytes = h.getMaxMessageBytes();
        hello.wall_ms = h.getWallMillis();
        hello.document_count = h.getDocumentCount();
        if (h.getInterest().size() > kInterestPrefixesMax) return Violation("too many interest prefixes");
        for (auto p : h.getInterest()) hello.interest.emplace_back(p.cStr(), p.size());
        if (h.getPartials().size() > kPartialsAnnouncedMax) return Violation("too many partial batches");
        for (auto p : h.getPartials()) {
          hello.partials[std::string(AsView(p.getTransferId()))] = p.getBytesHeld();
        }
        const absl::string_view refused = AsView(h.getRefusedAuthors());
        if (refused.size() > kRefusedAuthorsMax * crdt::kAuthorKeyBytes) {
          return Violation(absl::StrCat("more than ", kRefusedAuthorsMax, " refused authors"));
        }
        if (refused.size() % crdt::kAuthorKeyBytes != 0) {
          return Violation("refused authors are not whole 32-byte keys");
        }
        for (size_t i = 0; i < refused.size(); i += crdt::kAuthorKeyBytes) {
          hello.refused.insert(*crdt::AuthorKey::FromBytes(refused.substr(i, crdt::kAuthorKeyBytes)));
        }
        return absl::OkStatus();
      }
      case schema::SyncMessage::DOCUMENTS:
        kind = Kind::kDocuments;
        payload = std::string(AsView(m.getDocuments()));
        return absl::OkStatus();
      case schema::SyncMessage::DIGESTS:
        kind = Kind::kDigests;
        payload = std::string(AsView(m.getDigests()));
        return absl::OkStatus();
      case schema::SyncMessage::BATCHES:
        kind = Kind::kBatches;
        for (auto b : m.getBatches()) list.emplace_back(AsView(b));
        return absl::OkStatus();
      case schema::SyncMessage::CHUNK: {
        kind = Kind::kChunk;
        auto c = m.getChunk();
        chunk_id = std::string(AsView(c.getTransferId()));
        chunk_total = c.getTotalBytes();
        chunk_offset = c.getOffset();
        payload = std::string(AsView(c.getData()));
        return absl::OkStatus();
      }
      case schema::SyncMessage::HASHES:
        kind = Kind::kHashes;
        payload = std::string(AsView(m.getHashes()));
        return absl::OkStatus();
      case schema::SyncMessage::END_OF_FLIGHT: {
        kind = Kind::kEnd;
        auto e = m.getEndOfFlight();
        flight = e.getFlight();
        flight_messages = e.getMessages();
        flight_batches = e.getBatches();
        return absl::OkStatus();
      }
      case schema::SyncMessage::PUSH:
        kind = Kind::kPush;
        for (auto b : m.getPush()) list.emplace_back(AsView(b));
        return absl::OkStatus();
      case schema::SyncMessage::ABORT:
        kind = Kind::kAbort;
        payload = std::string(m.getAbort().cStr(), m.getAbort().size());
        return absl::OkStatus();
    }
    return Violation("unknown message kind");
  });
  if (!parsed.ok()) return Fail(parsed);

  switch (kind) {
    case Kind::kAbort:
      abort_sent_ = true;  // nothing to tell a peer that has gone
      return Fail(absl::AbortedError(absl::StrCat("peer ended the session: ", payload.substr(0, 400))));
    case Kind::kPush:
      for (std::string& b : list) {
        ++stats_.pushes_received;
        if (absl::Status s = OnBatch(std::move(b)); !s.ok()) return Fail(s);
      }
      return absl::OkStatus();
    default:
      break;
  }
  if (absl::Status s = CheckPeerRound(round); !s.ok()) return Fail(s);
  absl::Status result;
  switch (kind) {
    case Kind::kHello:
      result = OnHello(std::move(hello));
      break;
    case Kind::kDocuments:
      result = OnDocuments(payload);
      break;
    case Kind::kDigests:
      result = OnDigests(payload);
      break;
    case Kind::kBatches:
      if (!peer_flight1_done_ || !compared_ || differing_.empty() || peer_flight2_done_ ||
          !peer_chunk_id_.empty()) {
        result = Violation("batches outside flight 2");
        break;
      }
      ++peer_flight_messages_;
      for (std::string& b : list) {
        ++peer_batches_in_flight_;
        result = OnBatch(std::move(b));
        if (!result.ok()) break;
      }
      break;
    case Kind::kChunk:
      result = OnChunk(chunk_id, chunk_total, chunk_offset, payload);
      break;
    case Kind::kHashes:
      result = OnHashes(payload);
      break;
    case Kind::kEnd:
      result = OnEndOfFlight(flight, flight_messages, flight_batches);
      break;
    default:
      break;
  }
  // A round that ended with differing hashes reports it without failing
  // the session.
  if (absl::IsAborted(result) && failure_.ok() && !mismatched_.empty()) return result;
  if (!result.ok()) return Fail(result);
  return absl::OkStatus();
}

absl::Status SyncSession::OnHello(PeerHello hello) {
  if (peer_hello_) return Violation("a second hello in one round");
  // A peer that predates the range sends no oldest version: it speaks one.
  const uint16_t oldest = hello.oldest_version == 0 ? hello.version : hello.oldest_version;
  if (oldest > kSyncProtocolVersion || hello.version < kSyncProtocolVersionOldest) {
    const std::string theirs = oldest == hello.version
                                   ? absl::StrCat("version ", hello.version)
                                   : absl::StrCat("versions ", oldest, " to ", hello.version);
    const std::string ours =
        kSyncProtocolVersionOldest == kSyncProtocolVersion
            ? absl::StrCat("version ", kSyncProtocolVersion)
            : absl::StrCat("versions ", kSyncProtocolVersionOldest, " to ", kSyncProtocolVersion);
    return absl::FailedPreconditionError(
        absl::StrCat("peer speaks sync protocol ", theirs, ", this build speaks ", ours));
  }
  if (!hello.summary.empty() && hello.summary.size() != kSummaryBytes) {
    return Violation("a summary that is not 16 bytes");
  }
  if (hello.max_message_bytes < kSyncMessageBytesMin) {
    return Violation("peer's message limit is below 512 bytes");
  }
  for (const std::string& p : hello.interest) {
    if (p.size() > crdt::kDocumentIdBytesMax) return Violation("interest prefix too long");
  }
  for (const auto& [id, bytes] : hello.partials) {
    if (id.size() != kTransferIdBytes) return Violation("bad partial transfer id");
  }
  NoteClockOffset(hello.wall_ms);
  peer_hello_ = true;
  peer_max_message_bytes_ = hello.max_message_bytes;
  last_peer_interest_ = hello.interest;
  peer_interest_ = std::move(hello.interest);
  peer_partials_ = std::move(hello.partials);
  peer_refused_ = std::move(hello.refused);
  peer_summary_ = std::move(hello.summary);
  peer_document_count_ = hello.document_count;
  ++peer_flight_messages_;
  // The peer sends nothing more of flight 1 before it has this side's hello,
  // which follows the snapshot.
  if (snapshot_taken_) DecideListing();
  return absl::OkStatus();
}

void SyncSession::NoteClockOffset(uint64_t peer_wall_ms) {
  // Beyond about the year 6429 (2^47 ms) a time is nonsense, not skew.
  constexpr uint64_t kWallMsMax = uint64_t{1} << 47;
  const uint64_t own = store_->WallMillis();
  if (peer_wall_ms == 0 || own == 0 || peer_wall_ms > kWallMsMax || own > kWallMsMax) return;
  const int64_t offset = static_cast<int64_t>(peer_wall_ms) - static_cast<int64_t>(own);
  peer_clock_offset_ms_ = offset;
  const uint64_t distance = offset < 0 ? static_cast<uint64_t>(-offset) : static_cast<uint64_t>(offset);
  peer_clock_beyond_skew_ = distance > store_->ClockSkewMaxMs();
  if (peer_clock_beyond_skew_) ++stats_.peer_clock_skewed;
}

absl::Status SyncSession::OnDocuments(absl::string_view payload) {
  if (!peer_hello_ || peer_flight1_done_) return Violation("documents outside flight 1");
  if (listing_skipped_) return Violation("documents after equal summaries");
  if (drilling_ && !drill_done_) return Violation("documents before the drill-down ended");
  ++peer_flight_messages_;
  // Decoded entries cost more memory than their encoding; charge about
  // what they take (a document, an author entry, a range) against the
  // pending-bytes limit as they are decoded.
  auto charge = [this](uint64_t bytes) -> absl::Status {
    peer_documents_bytes_ += bytes;
    if (peer_documents_bytes_ > options_.pending_bytes_max) {
      return absl::ResourceExhaustedError("peer's flight 1 is over the pending-bytes limit");
    }
    return absl::OkStatus();
  };
  if (absl::Status s = charge(payload.size()); !s.ok()) return s;
  crdt::ByteReader in(payload);
  absl::StatusOr<uint64_t> new_authors = in.Varint("author count");
  if (!new_authors.ok()) return new_authors.status();
  if (*new_authors > in.remaining() / crdt::kAuthorKeyBytes) {
    return Violation("author table longer than the message");
  }
  if (in_authors_.size() + *new_authors > kSessionAuthorsMax) {
    return absl::ResourceExhaustedError("peer introduced more authors than a session holds");
  }
  for (uint64_t i = 0; i < *new_authors; ++i) {
    absl::StatusOr<absl::string_view> raw = in.Bytes(crdt::kAuthorKeyBytes, "author");
    if (!raw.ok()) return raw.status();
    in_authors_.push_back(*crdt::AuthorKey::FromBytes(*raw));
  }
  absl::StatusOr<uint64_t> entries = in.Varint("entry count");
  if (!entries.ok()) return entries.status();
  if (*entries > in.remaining()) return Violation("entry count exceeds the message");
  for (uint64_t e = 0; e < *entries; ++e) {
    absl::StatusOr<absl::string_view> id = in.LengthPrefixed(crdt::kDocumentIdBytesMax, "document id");
    if (!id.ok()) return id.status();
    if (absl::Status s = ValidateDocumentId(*id); !s.ok()) return s;
    if (drilling_ && !UnderAny(listed_nodes_, DocumentTreeKey(*id))) {
      return Violation("a document outside the nodes that differ");
    }
    absl::StatusOr<absl::string_view> hash = in.Bytes(kDocumentHashBytes, "document hash");
    if (!hash.ok()) return hash.status();
    auto [it, fresh] = peer_documents_.try_emplace(std::string(*id));
    if (fresh) {
      if (absl::Status s = charge(128 + id->size()); !s.ok()) return s;
      if (peer_documents_.size() > kSessionDocumentsMax) {
        return absl::ResourceExhaustedError("peer listed too many documents");
      }
      it->second.hash = std::string(*hash);
    } else if (it->second.hash != *hash) {
      return Violation("one document listed with two hashes");
    }
    absl::StatusOr<uint64_t> authors = in.Varint("author count");
    if (!authors.ok()) return authors.status();
    if (*authors > in.remaining()) return Violation("author count exceeds the message");
    for (uint64_t a = 0; a < *authors; ++a) {
      absl::StatusOr<uint64_t> number = in.Varint("author number");
      if (!number.ok()) return number.status();
      if (*number >= in_authors_.size()) return Violation("unknown author number");
      absl::StatusOr<absl::string_view> tag_bytes = in.Bytes(8, "content tag");
      if (!tag_bytes.ok()) return tag_bytes.status();
      uint64_t tag = 0;
      for (char c : *tag_bytes) tag = (tag << 8) | static_cast<unsigned char>(c);
      absl::StatusOr<absl::string_view> size_class = in.Bytes(1, "log size class");
      if (!size_class.ok()) return size_class.status();
      absl::StatusOr<uint64_t> count = in.Varint("batch count");
      if (!count.ok()) return count.status();
      if (*count > in.remaining() / 2) return Violation("batch count exceeds the message");
      peer_batch_ranges_ += *count;
      if (peer_batch_ranges_ > kSessionBatchRangesMax) {
        return absl::ResourceExhaustedError("peer listed too many batches");
      }
      if (absl::Status s = charge(96 + 16 * *count); !s.ok()) return s;
      const crdt::AuthorKey& author = in_authors_[static_cast<size_t>(*number)];
      auto [held, first_part] = it->second.holdings.try_emplace(author);
      const uint8_t listed_class = static_cast<uint8_t>((*size_class)[0]);
      if (first_part) {
        held->second.tag = tag;
        held->second.size_class = listed_class;
      } else if (held->second.tag != tag || held->second.size_class != listed_class) {
        return Violation("one author listed with two content tags or sizes");
      }
      std::vector<crdt::Range>& ranges = held->second.ranges;
      uint64_t previous_first = 0;
      for (uint64_t b = 0; b < *count; ++b) {
        absl::StatusOr<uint64_t> step = in.Varint("batch first");
        if (!step.ok()) return step.status();
        absl::StatusOr<uint64_t> span = in.Varint("batch span");
        if (!span.ok()) return span.status();
        if (*step > crdt::kDotMax - previous_first ||
            *span > crdt::kDotMax - (previous_first + *step)) {
          return Violation("seq out of range");
        }
        const crdt::Range r{previous_first + *step, previous_first + *step + *span};
        if (r.first == 0) return Violation("a batch starting at seq 0");
        if (!ranges.empty() && (r.first < ranges.back().first ||
                                (r.first == ranges.back().first && r.last <= ranges.back().last))) {
          return Violation("batches out of order");
        }
        ranges.push_back(r);
        previous_first = r.first;
      }
    }
  }
  if (!in.empty()) return Violation("trailing bytes in a document list");
  return absl::OkStatus();
}

absl::Status SyncSession::OnDigests(absl::string_view payload) {
  if (!drilling_ || drill_done_ || peer_flight1_done_) return Violation("digests outside the drill-down");
  ++peer_flight_messages_;
  crdt::ByteReader in(payload);
  absl::StatusOr<uint64_t> depth = in.Varint("depth");
  if (!depth.ok()) return depth.status();
  if (*depth != static_cast<uint64_t>(drill_depth_ + 1) ||
      peer_children_.size() == opened_.size() * kTreeFanout) {
    return Violation(absl::StrCat("digests of depth ", *depth, " while at depth ", drill_depth_ + 1));
  }
  while (!in.empty()) {
    if (peer_children_.size() == opened_.size() * kTreeFanout) {
      return Violation("more digests than nodes opened");
    }
    NodeDigest d;
    absl::StatusOr<uint64_t> count = in.Varint("document count");
    if (!count.ok()) return count.status();
    if (*count > kSessionDocumentsMax) return Violation("a node with more documents than a session holds");
    d.count = *count;
    if (d.count != 0) {
      absl::StatusOr<absl::string_view> bytes = in.Bytes(8, "node digest");
      if (!bytes.ok()) return bytes.status();
      for (char c : *bytes) d.digest = (d.digest << 8) | static_cast<unsigned char>(c);
    }
    peer_children_.push_back(d);
  }
  MaybeDescend();
  return absl::OkStatus();
}

absl::Status SyncSession::OnBatch(std::string bytes) {
  std::string reason;
  uint64_t changes = 0;
  const BatchOutcome outcome = store_->ApplyBatch(bytes, &reason, &changes);
  changes_applied_since_snapshot_ += changes;
  switch (outcome) {
    case BatchOutcome::kApplied:
      ++stats_.batches_applied;
      break;
    case BatchOutcome::kDuplicate:
      ++stats_.batches_duplicate;
      break;
    case BatchOutcome::kHeld:
      ++stats_.batches_held;
      break;
    case BatchOutcome::kRejected:
      // A batch the peer accepted but this side refuses (an author trusted
      // there, not here) is counted; the round's hashes will tell.
      ++stats_.batches_rejected;
      if (refused_in_round_++ == 0) first_refusal_ = reason;
      break;
    case BatchOutcome::kInvalid:
      // No honest peer sends one: the session fails and the peer is closed.
      ++stats_.batches_invalid;
      return absl::InvalidArgumentError(absl::StrCat("peer sent an invalid batch: ", reason));
  }
  return absl::OkStatus();
}

absl::Status SyncSession::OnChunk(absl::string_view id, uint64_t total, uint64_t offset,
                                  absl::string_view data) {
  if (!peer_flight1_done_ || !compared_ || differing_.empty() || peer_flight2_done_) {
    return Violation("batch chunk outside flight 2");
  }
  if (id.size() != kTransferIdBytes || total == 0) return Violation("malformed batch chunk");
  if (total > options_.pending_bytes_max || total > kBatchBytesMax) {
    return absl::ResourceExhaustedError(absl::StrCat("peer sends a batch of ", total,
                                                     " bytes, over the pending-bytes limit"));
  }
  if (peer_chunk_id_.empty()) {
    peer_chunk_id_ = std::string(id);
  } else if (peer_chunk_id_ != id) {
    return Violation("a new batch began before the previous one ended");
  }
  ++peer_flight_messages_;
  absl::StatusOr<std::string> whole = store_->partials().Append(partials_owner_, id, total, offset, data);
  if (!whole.ok()) return whole.status();
  if (whole->empty()) return absl::OkStatus();
  peer_chunk_id_.clear();
  ++peer_batches_in_flight_;
  return OnBatch(*std::move(whole));
}

absl::Status SyncSession::OnHashes(absl::string_view payload) {
  if (!peer_flight2_done_ || peer_flight3_done_) return Violation("hashes outside flight 3");
  ++peer_flight_messages_;
  crdt::ByteReader in(payload);
  absl::StatusOr<uint64_t> count = in.Varint("hash count");
  if (!count.ok()) return count.status();
  if (*count > in.remaining()) return Violation("hash count exceeds the message");
  for (uint64_t i = 0; i < *count; ++i) {
    absl::StatusOr<absl::string_view> id = in.LengthPrefixed(crdt::kDocumentIdBytesMax, "document id");
    if (!id.ok()) return id.status();
    absl::StatusOr<absl::string_view> hash = in.Bytes(kDocumentHashBytes, "document hash");
    if (!hash.ok()) return hash.status();
    if (!std::binary_search(differing_.begin(), differing_.end(), *id)) {
      return Violation("hash of a document that did not differ");
    }
    peer_hashes_[std::string(*id)] = std::string(*hash);
  }
  if (!in.empty()) return Violation("trailing bytes in a hash list");
  return absl::OkStatus();
}

absl::Status SyncSession::OnEndOfFlight(uint8_t flight, uint32_t messages, uint32_t batches) {
  const uint32_t received = peer_flight_messages_;
  auto check_count = [&]() -> absl::Status {
    if (messages != received) {
      return Violation(absl::StrCat("flight ", flight, " ended after ", received, " of ", messages,
                                    " messages"));
    }
    peer_flight_messages_ = 0;
    ++stats_.flights_received;
    return absl::OkStatus();
  };
  switch (flight) {
    case 1: {
      if (!peer_hello_ || peer_flight1_done_ || (drilling_ && !drill_done_)) {
        return Violation("end of flight 1 out of order");
      }
      if (absl::Status s = check_count(); !s.ok()) return s;
      peer_flight1_done_ = true;
      if (out_ == Out::kWaitPeerFlight1) return Compare();
      return absl::OkStatus();
    }
    case 2: {
      if (!compared_ || differing_.empty() || peer_flight2_done_ || !peer_chunk_id_.empty()) {
        return Violation("end of flight 2 out of order");
      }
      if (absl::Status s = check_count(); !s.ok()) return s;
      if (batches != peer_batches_in_flight_) {
        return Violation(absl::StrCat("flight 2 ended after ", peer_batches_in_flight_, " of ",
                                      batches, " batches"));
      }
      peer_flight2_done_ = true;
      return absl::OkStatus();
    }
    case 3: {
      if (!peer_flight2_done_ || peer_flight3_done_) return Violation("end of flight 3 out of order");
      if (absl::Status s = check_count(); !s.ok()) return s;
      peer_flight3_done_ = true;
      mismatched_.clear();
      for (const std::string& id : differing_) {
        absl::StatusOr<std::string> mine = store_->DocumentHash(id);
        if (!mine.ok()) return mine.status();
        auto theirs = peer_hashes_.find(id);
        if (theirs == peer_hashes_.end() || theirs->second != *mine) mismatched_.push_back(id);
      }
      synced_ = mismatched_.empty();
      MaybeFinishRound();
      if (!synced_) {
        const std::string why =
            refused_in_round_ > 0
                ? absl::StrCat("this side refused ", refused_in_round_,
                               " batch(es) the peer holds; first: ", first_refusal_)
            : withheld_in_round_ > 0
                ? absl::StrCat("this side withheld ", withheld_in_round_,
                               " batch(es) of authors the peer does not accept: ",
                               absl::StrJoin(withheld_authors_, ", "))
                : "a document changed during the round, the peer refused a batch, or one side "
                  "holds a compaction whose author had seen batches neither side has yet";
        return absl::AbortedError(absl::StrCat(
            "state hashes differ after the round for ", mismatched_.size(), " document(s): ",
            absl::StrJoin(mismatched_.begin(),
                          mismatched_.begin() + static_cast<ptrdiff_t>(std::min<size_t>(mismatched_.size(), 8)),
                          ", "),
            " (", why, ")"));
      }
      return absl::OkStatus();
    }
    default:
      return Violation(absl::StrCat("end of unknown flight ", flight));
  }
}

}  // namespace edgesync::transport
