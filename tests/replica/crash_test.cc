// Nothing acknowledged is lost: a writer process is killed with SIGKILL at
// random moments (EDGESYNC_CRASH_KILLS times, 100 by default) and every
// write it acknowledged is read back after each kill; a second writer is
// killed while tier merges run on its merge thread (EDGESYNC_MERGE_KILLS
// times, 16 by default). SIGKILL leaves the page cache alone, so another
// test counts the sync calls of the default durability mode under strace.

#include <bit>
#include <set>

#include "absl/strings/str_split.h"
#include "tests/replica/replica_test_util.h"

namespace edgesync::testing {
namespace {

constexpr char kDoc[] = "crash";

std::string Writer() { return SiblingProgram("replica_writer"); }

// The acknowledged writes in the log: index -> run of its last ack.
struct Acks {
  std::map<uint64_t, uint64_t> latest;
  uint64_t lines = 0;
  uint64_t next_index() const { return latest.empty() ? 0 : latest.rbegin()->first + 1; }
};

absl::StatusOr<Acks> ReadAcks(const std::string& log) {
  Acks acks;
  absl::StatusOr<std::string> text = ReadFile(log);
  if (!text.ok()) return acks;  // no log yet
  if (!text->empty() && text->back() != '\n') {
    return absl::DataLossError("log ends in a partial line (the writer logs whole lines)");
  }
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ');
    uint64_t i = 0, run = 0;
    if (f.size() != 2 || !absl::SimpleAtoi(f[0], &i) || !absl::SimpleAtoi(f[1], &run)) {
      return absl::DataLossError(absl::StrCat("bad log line \"", line, "\""));
    }
    acks.latest[i] = run;
    ++acks.lines;
  }
  return acks;
}

uint64_t FileSize(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

// Checks the acknowledged writes `which` (indices) against the replica.
void CheckAcked(Replica& r, const Acks& acks, const std::vector<uint64_t>& which, uint64_t kill) {
  Document d = r.document(kDoc);
  for (uint64_t i : which) {
    const uint64_t run = acks.latest.at(i);
    absl::StatusOr<std::string> v = d.Get(CrashPath(i));
    ASSERT_TRUE(v.ok()) << "after kill " << kill << ": acknowledged write " << i << " (run " << run
                        << ") is missing: " << v.status();
    ASSERT_EQ(*v, CrashJson(i, run)) << "after kill " << kill << ", write " << i;
  }
  // Each acknowledged line was one increment of /c (unacknowledged commits
  // may add more).
  absl::StatusOr<std::string> c = d.Get("/c");
  if (acks.lines > 0) {
    ASSERT_TRUE(c.ok()) << c.status();
    int64_t total = 0;
    ASSERT_TRUE(absl::SimpleAtoi(*c, &total)) << *c;
    ASSERT_GE(static_cast<uint64_t>(total), acks.lines) << "after kill " << kill;
  }
}

// Kills `writer` (it must die of the SIGKILL), reopens the replica in
// `replica_dir` into `*out` and checks the acknowledgements in `log` from
// `*checked_up_to` on plus `samples` older ones drawn by `rng`; then moves
// `*checked_up_to` past them.
void KillAndCheck(Child& writer, const std::string& replica_dir, const std::string& log,
                  uint64_t kill, int samples, std::mt19937_64& rng, uint64_t* checked_up_to,
                  std::unique_ptr<Replica>* out) {
  const int status = writer.Kill();
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "kill " << kill << ": writer " << DescribeExit(status);
  absl::StatusOr<Acks> acks = ReadAcks(log);
  ASSERT_TRUE(acks.ok()) << acks.status();
  absl::StatusOr<std::unique_ptr<Replica>> r = OpenReplica(replica_dir);
  ASSERT_TRUE(r.ok()) << "after kill " << kill << ": " << r.status();
  std::vector<uint64_t> which;
  for (auto it = acks->latest.lower_bound(*checked_up_to); it != acks->latest.end(); ++it) {
    which.push_back(it->first);
  }
  for (int s = 0; s < samples && !acks->latest.empty(); ++s) {
    auto it = acks->latest.begin();
    std::advance(it, static_cast<std::ptrdiff_t>(rng() % acks->latest.size()));
    which.push_back(it->first);
  }
  CheckAcked(**r, *acks, which, kill);
  *checked_up_to = acks->next_index();
  *out = *std::move(r);
}

TEST(CrashTest, EveryAcknowledgedWriteSurvivesSigkill) {
  const uint64_t seed = TestSeed();
  std::mt19937_64 rng(seed);
  const uint64_t kills = EnvCount("EDGESYNC_CRASH_KILLS", 100);
  ScratchDir dir;
  const std::string replica_dir = dir.Sub("replica");
  const std::string log = dir.Sub("acks.log");
  uint64_t checked_up_to = 0;  // indices below this were checked after a kill
  uint64_t early_kills = 0;
  for (uint64_t kill = 0; kill < kills; ++kill) {
    absl::StatusOr<Acks> acks = ReadAcks(log);
    ASSERT_TRUE(acks.ok()) << acks.status();
    Child writer;
    ES_ASSERT_OK(writer.Start({Writer(), "crash", replica_dir, log, absl::StrCat(acks->next_index()),
                               absl::StrCat(kill)},
                              /*capture_stdout=*/true));
    if (kill % 8 == 7) {
      // Anywhere in the first milliseconds: during Open, recovery, the first
      // commit.
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 15000));
      ++early_kills;
    } else {
      // Once it is committing (its log grew), after a random delay.
      const uint64_t size_before = FileSize(log);
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (FileSize(log) == size_before) {
        int status;
        ASSERT_NE(::waitpid(writer.pid(), &status, WNOHANG), writer.pid())
            << "writer ended by itself: " << DescribeExit(status);
        ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "writer made no progress";
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 4000));
    }
    // Reopen and check the new acknowledgements plus a sample of old ones.
    std::unique_ptr<Replica> r;
    KillAndCheck(writer, replica_dir, log, kill, 16, rng, &checked_up_to, &r);
    if (HasFatalFailure()) return;
  }

  // Finally: every acknowledged write, the set, a clean new commit, and a
  // log that reproduces the state on a fresh replica.
  absl::StatusOr<Acks> acks = ReadAcks(log);
  ASSERT_TRUE(acks.ok());
  std::cout << "[ crash    ] " << kills << " kills (" << early_kills << " early), " << acks->lines
            << " acknowledged writes" << std::endl;
  ASSERT_GT(acks->lines, kills / 2);
  auto r = MustOpen(replica_dir);
  std::vector<uint64_t> all;
  for (const auto& entry : acks->latest) all.push_back(entry.first);
  CheckAcked(*r, *acks, all, kills);
  Document d = r->document(kDoc);
  absl::StatusOr<std::string> set = d.Get("/s");
  ASSERT_TRUE(set.ok()) << set.status();
  std::set<uint64_t> members;
  for (absl::string_view m : absl::StrSplit(absl::string_view(*set).substr(1, set->size() - 2), ',', absl::SkipEmpty())) {
    uint64_t v = 0;
    ASSERT_TRUE(absl::SimpleAtoi(m, &v)) << m;
    members.insert(v);
  }
  for (uint64_t i : all) EXPECT_TRUE(members.count(i)) << "set member " << i << " lost";
  ES_ASSERT_OK(d.Put("/after", "true"));
  EXPECT_EQ(MustGet(d, "/after"), "true");

  auto fresh = MustOpen(dir.Sub("fresh"));
  ES_ASSERT_OK(fresh->Trust(r->public_key_hex()));
  ASSERT_TRUE(r->ExportBundle(dir.Sub("log.bundle")).ok());
  absl::StatusOr<BundleReport> in = fresh->ImportBundle(dir.Sub("log.bundle"));
  ASSERT_TRUE(in.ok()) << in.status();
  EXPECT_EQ(in->batches.rejected, 0u) << (in->batches.reasons.empty() ? "" : in->batches.reasons[0]);
  EXPECT_EQ(in->batches.equivocations, 0u);
  EXPECT_EQ(MustDigest(fresh->document(kDoc)), MustDigest(d));
  EXPECT_EQ(StoredEquivocations(*r, kDoc), 0u);
}

// A crash while tier merges run on the merge thread: in every other run
// the first background merge is held after it computed its batch and
// before it installed it (the writer prints "merging"), and the writer is
// killed there while it commits on; in the others it is killed at a random
// moment (merges computing or installing). After each kill every
// acknowledged write is there and the own log is intact (disjoint entries
// adding up to the coverage); at the end a fresh replica rebuilt from the
// log has the same state.
TEST(CrashTest, KilledDuringBackgroundTierMergesLosesNothing) {
  const uint64_t seed = TestSeed();
  std::mt19937_64 rng(seed);
  const uint64_t kills = EnvCount("EDGESYNC_MERGE_KILLS", 16);
  ScratchDir dir;
  const std::string replica_dir = dir.Sub("replica");
  const std::string log = dir.Sub("acks.log");
  uint64_t checked_up_to = 0;
  for (uint64_t kill = 0; kill < kills; ++kill) {
    absl::StatusOr<Acks> acks = ReadAcks(log);
    ASSERT_TRUE(acks.ok()) << acks.status();
    const bool hold = kill % 2 == 0;
    Child writer;
    ES_ASSERT_OK(writer.Start({Writer(), "merges", replica_dir, log,
                               absl::StrCat(acks->next_index()), absl::StrCat(kill),
                               hold ? "hold" : "free"},
                              /*capture_stdout=*/true));
    ES_ASSERT_OK(writer.WaitForLine("ready", std::chrono::seconds(60)));
    // The merge thread runs at a lower priority: under a sanitizer on a
    // loaded machine its first merge can take minutes.
    if (hold) ES_ASSERT_OK(writer.WaitForLine("merging", std::chrono::seconds(300)));
    // Commits go on (and, free, merges run) for a random while.
    const uint64_t size_before = FileSize(log);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (FileSize(log) == size_before) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "writer made no progress";
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 20000));
    std::unique_ptr<Replica> r;
    KillAndCheck(writer, replica_dir, log, kill, 0, rng, &checked_up_to, &r);
    if (HasFatalFailure()) return;
    CheckedOwnLog(*r, kDoc);
    if (HasFailure()) return;
  }
  absl::StatusOr<Acks> acks = ReadAcks(log);
  ASSERT_TRUE(acks.ok());
  std::cout << "[ merges   ] " << kills << " kills, " << acks->lines << " acknowledged writes"
            << std::endl;
  auto r = MustOpen(replica_dir);
  std::vector<uint64_t> all;
  for (const auto& entry : acks->latest) all.push_back(entry.first);
  CheckAcked(*r, *acks, all, kills);
  // One more commit hands what is due to the merge thread; once it is
  // done, the log is in tiers again: O(log n) entries below the 16 MiB cap
  // of a merge (plus one per 8 MiB above it), where commits alone (pairs of
  // up to 16 KiB) would leave about one per 8 writes of 2 KiB.
  ES_ASSERT_OK(r->document(kDoc).Put("/after", "true"));
  r->WaitForCompaction();
  const uint64_t kib = acks->lines * 2 + 1;
  EXPECT_LE(CheckedOwnLog(*r, kDoc).size(), 3 * std::bit_width(kib) + kib / 8192 + 4);
  EXPECT_EQ(r->stats().compaction_failures, 0u);
  auto fresh = RebuiltFromLogs(*r, dir, "fresh");
  EXPECT_EQ(MustDigest(fresh->document(kDoc)), MustDigest(r->document(kDoc)));
}

// A crash while a replica directory is being created (identity, store
// initialisation, first commit): the directory must still open and work.
TEST(CrashTest, KilledWhileCreatingTheReplicaStillOpens) {
  const uint64_t seed = TestSeed();
  std::mt19937_64 rng(seed);
  ScratchDir dir;
  // How long creating and the first commit take here, to aim the kills.
  uint64_t create_us = 0;
  {
    Child writer;
    const auto start = std::chrono::steady_clock::now();
    ES_ASSERT_OK(writer.Start({Writer(), "crash", dir.Sub("timing"), dir.Sub("timing.log"), "0", "0"},
                              /*capture_stdout=*/true));
    ES_ASSERT_OK(writer.WaitForLine("ready", std::chrono::seconds(60)));
    create_us = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                          std::chrono::steady_clock::now() - start)
                                          .count());
    writer.Kill();
  }
  const int kKills = static_cast<int>(EnvCount("EDGESYNC_CREATE_KILLS", 40));
  int opened_before_kill = 0;
  for (int k = 0; k < kKills; ++k) {
    const std::string replica_dir = dir.Sub(absl::StrCat("r", k));
    Child writer;
    ES_ASSERT_OK(writer.Start({Writer(), "crash", replica_dir, dir.Sub(absl::StrCat("log", k)), "0",
                               absl::StrCat(k)},
                              /*capture_stdout=*/true));
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % (create_us + 1)));
    writer.Kill();
    struct stat st;
    if (::stat((replica_dir + "/data.mdb").c_str(), &st) == 0) ++opened_before_kill;
    absl::StatusOr<std::unique_ptr<Replica>> r = OpenReplica(replica_dir);
    ASSERT_TRUE(r.ok()) << "kill " << k << " (EDGESYNC_SEED=" << seed << "): " << r.status();
    ES_ASSERT_OK((*r)->document("crash").Put("/after", "1"));
    EXPECT_EQ(MustGet((*r)->document("crash"), "/after"), "1");
  }
  std::cout << "[ create   ] " << kKills << " kills within " << create_us << " us of start, "
            << opened_before_kill << " after the store file existed" << std::endl;
}

// Sync calls (fsync, fdatasync, msync, sync_file_range) of the writer under
// strace -f -c for `n` commits in `mode`.
absl::StatusOr<uint64_t> SyncCalls(const std::string& dir, uint64_t n, const std::string& mode) {
  const std::string summary = absl::StrCat(dir, "/strace-", mode, "-", n, ".txt");
  Child strace;
  absl::Status s = strace.Start({"strace", "-f", "-c", "-e", "trace=fsync,fdatasync,msync,sync_file_range",
                                 "-o", summary, Writer(), "commits", absl::StrCat(dir, "/r-", mode, "-", n),
                                 absl::StrCat(n), mode},
                                /*capture_stdout=*/false,
                                // LeakSanitizer cannot run under ptrace.
                                {"ASAN_OPTIONS=detect_leaks=0"}, /*search_path=*/true);
  if (!s.ok()) return s;
  absl::StatusOr<int> status = strace.Wait(std::chrono::minutes(5));
  if (!status.ok()) return status.status();
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    return absl::InternalError(absl::StrCat("strace writer: ", DescribeExit(*status)));
  }
  absl::StatusOr<std::string> text = ReadFile(summary);
  if (!text.ok()) return text.status();
  uint64_t calls = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    std::vector<absl::string_view> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (f.size() < 5) continue;
    const absl::string_view name = f.back();
    if (name != "fsync" && name != "fdatasync" && name != "msync" && name != "sync_file_range") continue;
    uint64_t c = 0;
    if (!absl::SimpleAtoi(f[3], &c)) return absl::InternalError(absl::StrCat("strace line: ", line));
    calls += c;
  }
  return calls;
}

TEST(CrashTest, DefaultDurabilitySyncsAtEveryCommit) {
  {
    Child probe;
    ES_ASSERT_OK(probe.Start({"strace", "-o", "/dev/null", "true"}, false, {}, /*search_path=*/true));
    absl::StatusOr<int> st = probe.Wait(std::chrono::seconds(30));
    if (!st.ok() || !WIFEXITED(*st) || WEXITSTATUS(*st) != 0) {
      GTEST_SKIP() << "strace is missing or cannot ptrace here";
    }
  }
  ScratchDir dir;
  constexpr uint64_t kCommits = 100;
  for (const std::string mode : {"default", "fast"}) {
    absl::StatusOr<uint64_t> base = SyncCalls(dir.path(), 0, mode);
    ASSERT_TRUE(base.ok()) << base.status();
    absl::StatusOr<uint64_t> calls = SyncCalls(dir.path(), kCommits, mode);
    ASSERT_TRUE(calls.ok()) << calls.status();
    std::cout << "[ syncs    ] " << mode << ": " << *calls << " sync calls for open + " << kCommits
              << " commits, " << *base << " for open alone" << std::endl;
    // kDurable: data pages fdatasync'ed (and the meta page written O_DSYNC)
    // at every commit; kFast: one sync per commit too (types.h).
    EXPECT_GE(*calls, *base + kCommits) << mode;
  }
}

}  // namespace
}  // namespace edgesync::testing
