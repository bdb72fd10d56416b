// A replica restored from an earlier copy of its store in place (a VM
// snapshot, a backup written back over its data file: same machine, same
// inode, so not a copy) has lost its later writes, which its peers still
// hold (issue 10 section 3). Met by a peer, it refuses commits until it has
// fetched them back, then continues after them. If it wrote first, it
// reissued seqs: both sides record the equivocation, converge, and the
// restored replica refuses commits until `rekey` gives it a new key.

#include <sys/stat.h>

#include <filesystem>

#include <gmock/gmock.h>

#include "edgesync/session.h"
#include "lib/replica/identity.h"
#include "tests/replica/replica_test_util.h"

namespace edgesync::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kDoc[] = "d";

uint64_t Inode(const std::string& file) {
  struct stat st;
  EXPECT_EQ(::stat(file.c_str(), &st), 0) << file;
  return static_cast<uint64_t>(st.st_ino);
}

// A round ending with documents still differing (kAborted) is no failure.
void Deliver(Session& to, const std::string& message) {
  absl::Status s = to.Receive(message);
  EXPECT_TRUE(s.ok() || absl::IsAborted(s)) << s;
  ES_EXPECT_OK(to.failure());
}

class RestoredStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    replica_ = MustOpen(dir_path_);
    peer_ = MustOpen(dir_.Sub("peer"));
    ES_ASSERT_OK(replica_->Trust(peer_->public_key_hex()));
    ES_ASSERT_OK(peer_->Trust(replica_->public_key_hex()));
    ES_ASSERT_OK(replica_->document(kDoc).Put("/x", "1"));
    // The snapshot, taken with the replica closed.
    replica_.reset();
    std::filesystem::copy(dir_path_, snapshot_, std::filesystem::copy_options::recursive);
    replica_ = MustOpen(dir_path_);
  }

  // Writes the snapshot back over the store's data file, in place.
  void Restore() {
    replica_.reset();
    const std::string data = dir_path_ + "/data.mdb";
    const uint64_t inode = Inode(data);
    std::filesystem::copy_file(snapshot_ + "/data.mdb", data,
                               std::filesystem::copy_options::overwrite_existing);
    ASSERT_EQ(Inode(data), inode);
    replica_ = MustOpen(dir_path_);
  }

  void ExpectConverged() {
    absl::StatusOr<LocalSyncResult> r = SyncLocal(*replica_, *peer_);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r->synced);
    EXPECT_EQ(MustDigest(replica_->document(kDoc)), MustDigest(peer_->document(kDoc)));
  }

  ScratchDir dir_;
  const std::string dir_path_ = dir_.Sub("r");
  const std::string snapshot_ = dir_.Sub("snapshot");
  std::unique_ptr<Replica> replica_;
  std::unique_ptr<Replica> peer_;
};

TEST_F(RestoredStoreTest, ARestoredReplicaFetchesItsLaterWritesBackBeforeCommitting) {
  ES_ASSERT_OK(replica_->document(kDoc).Put("/y", "2"));
  ES_ASSERT_OK(replica_->document(kDoc).Put("/z", "3"));
  ExpectConverged();
  Restore();
  EXPECT_EQ(MustGet(replica_->document(kDoc)), R"({"x":1})");

  absl::StatusOr<std::unique_ptr<Session>> mine = Session::Create(*replica_);
  absl::StatusOr<std::unique_ptr<Session>> theirs = Session::Create(*peer_);
  ASSERT_TRUE(mine.ok() && theirs.ok());
  // One message at a time: once the peer's listing has arrived, the
  // replica knows the peer holds its seqs 2 and 3, and refuses commits on
  // the document until they are back.
  bool refused_seen = false;
  const auto check_refusal = [&] {
    if (refused_seen || replica_->stats().own_seqs_missing == 0) return;
    refused_seen = true;
    EXPECT_EQ(replica_->stats().own_seqs_missing, 2u);
    const absl::Status refused = replica_->document(kDoc).Put("/w", "4");
    EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
    EXPECT_THAT(std::string(refused.message()), HasSubstr("seqs 2-3"));
    EXPECT_THAT(std::string(refused.message()), HasSubstr("fetches them back"));
    // Other documents are not held back.
    ES_EXPECT_OK(replica_->document("other").Put("/v", "1"));
  };
  for (bool busy = true; busy;) {
    busy = false;
    for (Session* from : {mine->get(), theirs->get()}) {
      absl::StatusOr<std::optional<std::string>> m = from->Next();
      ASSERT_TRUE(m.ok()) << m.status();
      if (!m->has_value()) continue;
      busy = true;
      Deliver(from == mine->get() ? **theirs : **mine, **m);
      check_refusal();
    }
  }
  EXPECT_TRUE(refused_seen);
  EXPECT_EQ(MustGet(replica_->document(kDoc)), R"({"x":1,"y":2,"z":3})");
  EXPECT_EQ(replica_->stats().own_seqs_missing, 0u);
  EXPECT_EQ(replica_->stats().own_seqs_recovered, 2u);
  EXPECT_EQ(replica_->stats().equivocations, 0u);

  absl::StatusOr<CommitInfo> next = [&] {
    Transaction t = replica_->document(kDoc).Begin();
    EXPECT_TRUE(t.Put("/w", "4").ok());
    return t.Commit();
  }();
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->seq_first, 4u);
  ExpectConverged();
  EXPECT_EQ(MustGet(peer_->document(kDoc)), R"({"w":4,"x":1,"y":2,"z":3})");
  EXPECT_EQ(peer_->stats().equivocations, 0u);
}

TEST_F(RestoredStoreTest, AReissueIsCaughtOnBothSidesAndRekeyLetsTheReplicaWriteAgain) {
  ES_ASSERT_OK(replica_->document(kDoc).Put("/y", "\"lost\""));
  ExpectConverged();
  Restore();
  const std::string old_key = replica_->public_key_hex();
  // Written before meeting any peer: seq 2 again, with other content.
  ES_ASSERT_OK(replica_->document(kDoc).Put("/y", "\"reissued\""));

  absl::StatusOr<LocalSyncResult> r = SyncLocal(*replica_, *peer_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GE(replica_->stats().equivocations, 1u);
  EXPECT_GE(peer_->stats().equivocations, 1u);
  EXPECT_EQ(replica_->stats().own_key_equivocated, 1u);
  EXPECT_EQ(peer_->stats().own_key_equivocated, 0u);
  ExpectConverged();
  const absl::Status refused = replica_->document("other").Put("/v", "1");
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
  EXPECT_THAT(std::string(refused.message()), HasSubstr("signed two different batches"));
  EXPECT_THAT(std::string(refused.message()), HasSubstr("edgesync rekey " + dir_path_));

  // Rekey needs the replica closed in this process.
  EXPECT_EQ(Replica::Rekey(dir_path_).status().code(), absl::StatusCode::kFailedPrecondition);
  replica_.reset();
  absl::StatusOr<std::string> new_key = Replica::Rekey(dir_path_);
  ASSERT_TRUE(new_key.ok()) << new_key.status();
  replica_ = MustOpen(dir_path_);
  EXPECT_EQ(replica_->public_key_hex(), *new_key);
  EXPECT_NE(*new_key, old_key);
  EXPECT_EQ(replica_->stats().own_key_equivocated, 0u);
  const std::vector<std::string> trusted = *replica_->TrustedKeys();
  EXPECT_THAT(trusted, ::testing::Contains(old_key));
  EXPECT_THAT(trusted, ::testing::Contains(*new_key));

  ES_ASSERT_OK(peer_->Trust(*new_key));
  ES_ASSERT_OK(replica_->document(kDoc).Put("/z", "3"));
  ExpectConverged();
  EXPECT_EQ(MustGet(peer_->document(kDoc), "/z"), "3");
  EXPECT_EQ(MustGet(peer_->document(kDoc)), MustGet(replica_->document(kDoc)));
}

TEST_F(RestoredStoreTest, RekeyLetsACopiedStoreCommitAndKeepsItsData) {
  replica_.reset();
  const std::string copy = dir_.Sub("copy");
  std::filesystem::copy(dir_path_, copy, std::filesystem::copy_options::recursive);
  {
    auto c = MustOpen(copy);
    const absl::Status s = c->document(kDoc).Put("/b", "2");
    EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(s.message()), HasSubstr("edgesync rekey " + copy));
  }
  absl::StatusOr<std::string> key = Replica::Rekey(copy);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_FALSE(std::filesystem::exists(copy + "/identity.key.new"));
  auto c = MustOpen(copy);
  EXPECT_EQ(c->public_key_hex(), *key);
  EXPECT_EQ(MustGet(c->document(kDoc)), R"({"x":1})");
  ES_EXPECT_OK(c->document(kDoc).Put("/b", "2"));
  EXPECT_EQ(MustGet(c->document(kDoc)), R"({"b":2,"x":1})");
  EXPECT_EQ(Replica::Rekey(dir_.Sub("nothing")).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RestoredStoreTest, AnInterruptedRekeyIsUndoneByTheNextOpen) {
  const std::string key = replica_->public_key_hex();
  replica_.reset();
  // A new key written, the store never switched to it.
  ASSERT_TRUE(internal::CreateIdentity(dir_path_, internal::kPendingIdentityFileName).ok());
  replica_ = MustOpen(dir_path_);
  EXPECT_EQ(replica_->public_key_hex(), key);
  EXPECT_FALSE(std::filesystem::exists(dir_path_ + "/identity.key.new"));
  ES_EXPECT_OK(replica_->document(kDoc).Put("/b", "2"));
}

}  // namespace
}  // namespace edgesync::testing
