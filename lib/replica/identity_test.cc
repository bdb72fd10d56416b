// The identity file against a local attacker (security issue 9, finding A):
// links and files planted in the replica directory are never followed or
// written through, and a key file or directory another user could have
// planted or may read is refused with an error that names the path and the
// fix. Driven through Replica::Open, as `edgesync init` does.

#include "lib/replica/identity.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "edgesync/replica.h"
#include "lib/test_util/temp_dir.h"

namespace edgesync::internal {
namespace {

// A uid that no test process runs as.
constexpr uid_t kOtherUid = 54321;

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void Spit(const std::string& path, const std::string& bytes, mode_t mode) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
  ASSERT_EQ(::chmod(path.c_str(), mode), 0);
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

class IdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    replica_ = tmp_.path() + "/replica";
    ASSERT_EQ(::mkdir(replica_.c_str(), 0700), 0);
    key_ = replica_ + "/identity.key";
    // A file of the attacker's, outside the replica directory.
    victim_ = tmp_.path() + "/victim";
    Spit(victim_, "attacker's file\n", 0644);
  }

  absl::Status Open() { return Replica::Open(replica_).status(); }

  TempDir tmp_;
  std::string replica_;
  std::string key_;
  std::string victim_;
};

TEST_F(IdentityTest, CreatedKeyIsAPrivateRegularFile) {
  ASSERT_TRUE(Open().ok());
  struct stat st;
  ASSERT_EQ(::lstat(key_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(st.st_uid, ::geteuid());
  EXPECT_TRUE(LoadIdentity(replica_).ok());
}

// The old writer opened identity.key.tmp.<pid> with O_CREAT | O_TRUNC and
// followed a link planted there, writing the secret key into its target.
TEST_F(IdentityTest, LinkPlantedAtThePidTempNameIsNotWrittenThrough) {
  const std::string planted = absl::StrCat(key_, ".tmp.", ::getpid());
  ASSERT_EQ(::symlink(victim_.c_str(), planted.c_str()), 0);
  absl::Status s = Open();
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_EQ(Slurp(victim_), "attacker's file\n");
  struct stat st;
  ASSERT_EQ(::lstat(key_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode)) << "identity.key must be the written file, not the link";
  // The planted link is left alone (never opened, never renamed).
  ASSERT_EQ(::lstat(planted.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
}

TEST_F(IdentityTest, CreateLeavesOnlyTheKeyFile) {
  ASSERT_TRUE(CreateIdentity(replica_).ok());
  ASSERT_TRUE(CreateIdentity(replica_).ok());  // replaces it
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(replica_)) {
    names.push_back(e.path().filename().string());
  }
  EXPECT_EQ(names, std::vector<std::string>{"identity.key"});
}

// A link at identity.key to the attacker's file: loading it would run the
// replica under a key the attacker chose (or writing would go through it).
TEST_F(IdentityTest, LinkAtIdentityKeyIsRefused) {
  absl::StatusOr<transport::SigningKey> attacker = transport::SigningKey::Generate();
  ASSERT_TRUE(attacker.ok());
  const std::string attacker_key =
      absl::StrCat(absl::BytesToHexString(attacker->secret_bytes()), "\n");
  Spit(victim_, attacker_key, 0600);
  ASSERT_EQ(::symlink(victim_.c_str(), key_.c_str()), 0);
  absl::Status s = Open();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find(key_), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("symbolic link"), absl::string_view::npos) << s;
  EXPECT_EQ(Slurp(victim_), attacker_key);
  EXPECT_EQ(CreateIdentity(replica_).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Slurp(victim_), attacker_key);
}

// A dangling link: the old code saw "missing", generated a key and renamed
// it over the link, so it opened; the new one refuses and creates nothing.
TEST_F(IdentityTest, DanglingLinkAtIdentityKeyIsRefused) {
  const std::string nowhere = tmp_.path() + "/nowhere";
  ASSERT_EQ(::symlink(nowhere.c_str(), key_.c_str()), 0);
  absl::Status s = Open();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("symbolic link"), absl::string_view::npos) << s;
  EXPECT_FALSE(Exists(nowhere));
  EXPECT_FALSE(Exists(replica_ + "/data.mdb"));
}

TEST_F(IdentityTest, DirectoryAtIdentityKeyIsRefused) {
  ASSERT_EQ(::mkdir(key_.c_str(), 0700), 0);
  absl::Status s = Open();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find(key_), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find("is a directory, not a regular file"), absl::string_view::npos) << s;
}

// Opening a FIFO for reading would block until someone writes to it.
TEST_F(IdentityTest, FifoAtIdentityKeyIsRefusedWithoutBlocking) {
  ASSERT_EQ(::mkfifo(key_.c_str(), 0600), 0);
  absl::Status s = Open();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("is a FIFO"), absl::string_view::npos) << s;
}

TEST_F(IdentityTest, GroupReadableKeyIsRefused) {
  ASSERT_TRUE(Open().ok());
  for (mode_t mode : {0640, 0604, 0610, 0660}) {
    ASSERT_EQ(::chmod(key_.c_str(), mode), 0);
    absl::Status s = Open();
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
    EXPECT_NE(s.message().find(key_), absl::string_view::npos) << s;
    EXPECT_NE(s.message().find(absl::StrCat("has mode 0", mode / 64, (mode / 8) % 8, mode % 8)),
              absl::string_view::npos)
        << s;
    EXPECT_NE(s.message().find("chmod 600"), absl::string_view::npos) << s;
  }
  ASSERT_EQ(::chmod(key_.c_str(), 0600), 0);
  EXPECT_TRUE(Open().ok());
}

TEST_F(IdentityTest, KeyOwnedByAnotherUserIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give the file to another uid";
  ASSERT_TRUE(Open().ok());
  ASSERT_EQ(::chown(key_.c_str(), kOtherUid, kOtherUid), 0);
  absl::Status s = Open();
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_NE(s.message().find(key_), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find(absl::StrCat("is owned by uid ", kOtherUid)), absl::string_view::npos)
      << s;
  EXPECT_NE(s.message().find("chown it to uid 0"), absl::string_view::npos) << s;
}

TEST_F(IdentityTest, DirectoryWritableByOthersIsRefused) {
  for (mode_t mode : {0777, 0703, 0730, 01777}) {
    ASSERT_EQ(::chmod(replica_.c_str(), mode), 0);
    absl::Status s = Open();
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
    EXPECT_NE(s.message().find(replica_), absl::string_view::npos) << s;
    EXPECT_NE(s.message().find("chmod go-w"), absl::string_view::npos) << s;
    EXPECT_FALSE(Exists(key_)) << "nothing is written into such a directory";
  }
  ASSERT_EQ(::chmod(replica_.c_str(), 0755), 0);  // others may read: fine
  EXPECT_TRUE(Open().ok());
  // A replica made earlier whose directory was opened up later.
  ASSERT_EQ(::chmod(replica_.c_str(), 0777), 0);
  EXPECT_EQ(Open().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(LoadIdentity(replica_).status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(IdentityTest, DirectoryOwnedByAnotherUserIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give the directory to another uid";
  ASSERT_EQ(::chown(replica_.c_str(), kOtherUid, kOtherUid), 0);
  absl::Status s = Open();
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
  EXPECT_NE(s.message().find(replica_), absl::string_view::npos) << s;
  EXPECT_NE(s.message().find(absl::StrCat("is owned by uid ", kOtherUid)), absl::string_view::npos)
      << s;
  EXPECT_FALSE(Exists(key_));
}

}  // namespace
}  // namespace edgesync::internal
