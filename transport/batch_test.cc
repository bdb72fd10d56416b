// The signed batch envelope has exactly one encoding (security issue 9,
// finding B): the signature covers the body only, so a relay that
// re-encodes the envelope (unused words, more segments, far pointers,
// another field order) must not produce a second accepted byte string for
// the same signed content.

#include "transport/batch.h"

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <gtest/gtest.h>

#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "transport/batch.capnp.h"
#include "transport/capnp_util.h"

namespace edgesync::transport {
namespace {

uint32_t U32At(absl::string_view bytes, size_t at) {
  uint32_t v = 0;
  std::memcpy(&v, bytes.data() + at, 4);  // little-endian host, as capnp
  return v;
}

void PutU32At(std::string& bytes, size_t at, uint32_t v) { std::memcpy(bytes.data() + at, &v, 4); }

// A delta of `n` arbitrary bytes: opening a batch does not decode it.
std::string Delta(size_t n) {
  std::string d(n, '\0');
  for (size_t i = 0; i < n; ++i) d[i] = static_cast<char>(i * 131 + 7);
  return d;
}

class BatchTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<SigningKey> key = SigningKey::Generate();
    ASSERT_TRUE(key.ok()) << key.status();
    key_.emplace(*std::move(key));
  }

  BatchHeader Header() const {
    BatchHeader h;
    h.document = "doc";
    h.author = key_->public_key();
    h.seq_first = 1;
    h.seq_last = 3;
    h.hlc = 12345;
    return h;
  }

  std::string Seal(size_t delta_bytes) const {
    absl::StatusOr<std::string> b = SealBatch(Header(), Delta(delta_bytes), *key_);
    EXPECT_TRUE(b.ok()) << b.status();
    return b.ok() ? *b : std::string();
  }

  std::optional<SigningKey> key_;
};

// The body and signature of a sealed batch.
void Split(absl::string_view batch, std::string* body, std::string* signature) {
  ASSERT_TRUE(ReadCapnp(batch, [&](capnp::MessageReader& reader) {
                auto root = reader.getRoot<schema::SignedBatch>();
                *body = std::string(AsView(root.getBody()));
                *signature = std::string(AsView(root.getSignature()));
                return absl::OkStatus();
              }).ok());
}

// Another valid encoding of the same content, built with a builder whose
// segments are `first_segment_words` long (small: far pointers and many
// segments), the fields set in the given order.
std::string Reencode(absl::string_view body, absl::string_view signature, unsigned first_segment_words,
                     bool signature_first) {
  capnp::MallocMessageBuilder message(first_segment_words, capnp::AllocationStrategy::FIXED_SIZE);
  auto root = message.initRoot<schema::SignedBatch>();
  if (signature_first) root.setSignature(AsCapnpData(signature));
  root.setBody(AsCapnpData(body));
  if (!signature_first) root.setSignature(AsCapnpData(signature));
  return MessageToBytes(message);
}

TEST_F(BatchTest, EverySealedBatchIsOneSegmentAndRoundTrips) {
  // Around the builder's default 8 KiB first segment, where an envelope used
  // to spill into a second segment, and well past it.
  for (size_t n : {0, 1, 7, 8, 9, 100, 8000, 8100, 8150, 8192, 8200, 9000, 65536, 1 << 20,
                   (4 << 20) + 3}) {
    SCOPED_TRACE(absl::StrCat("delta of ", n, " bytes"));
    const std::string batch = Seal(n);
    ASSERT_GE(batch.size(), 8u);
    EXPECT_EQ(U32At(batch, 0), 0u) << "segment count - 1";
    EXPECT_EQ(uint64_t{U32At(batch, 4)} * 8 + 8, batch.size()) << "one segment, nothing after it";
    absl::StatusOr<OpenedBatch> opened = OpenBatch(batch);
    ASSERT_TRUE(opened.ok()) << opened.status();
    EXPECT_EQ(opened->bytes, batch);
    EXPECT_EQ(opened->header, Header());
    EXPECT_EQ(opened->delta, Delta(n));
    // The canonical encoding of its own body and signature is itself.
    std::string body, signature;
    Split(batch, &body, &signature);
    EXPECT_EQ(Reencode(body, signature, static_cast<unsigned>(batch.size() / 8), false), batch);
  }
}

TEST_F(BatchTest, ReencodedEnvelopesAreRefused) {
  for (size_t n : {10, 20000}) {
    SCOPED_TRACE(absl::StrCat("delta of ", n, " bytes"));
    const std::string honest = Seal(n);
    std::string body, signature;
    Split(honest, &body, &signature);
    const uint32_t words = U32At(honest, 4);

    std::vector<std::pair<std::string, std::string>> copies;
    {  // One unused zero word at the end of the segment.
      std::string b = honest + std::string(8, '\0');
      PutU32At(b, 4, words + 1);
      copies.emplace_back("unused word", b);
    }
    {  // A second segment of one word.
      std::string b(16, '\0');
      PutU32At(b, 0, 1);
      PutU32At(b, 4, words);
      PutU32At(b, 8, 1);
      b += honest.substr(8) + std::string(8, '\0');
      copies.emplace_back("extra segment", b);
    }
    {  // A zero word between the struct and the body: both list pointers
       // skip it (offset + 1 is +4 in the low 32 bits).
      std::string b = honest.substr(0, 8 + 24) + std::string(8, '\0') + honest.substr(8 + 24);
      PutU32At(b, 4, words + 1);
      PutU32At(b, 8 + 8, U32At(b, 8 + 8) + 4);
      PutU32At(b, 8 + 16, U32At(b, 8 + 16) + 4);
      copies.emplace_back("gap before the body", b);
    }
    copies.emplace_back("far pointers", Reencode(body, signature, 1, false));
    copies.emplace_back("small segments", Reencode(body, signature, 16, false));
    copies.emplace_back("signature first", Reencode(body, signature, 1 << 16, true));

    for (const auto& [what, copy] : copies) {
      SCOPED_TRACE(what);
      ASSERT_NE(copy, honest);
      // A valid message with the same signed content: only the canonical
      // rule tells it apart.
      absl::StatusOr<BatchHeader> peeked = PeekBatchHeader(copy);
      ASSERT_TRUE(peeked.ok()) << peeked.status();
      EXPECT_EQ(*peeked, Header());
      std::string copy_body, copy_signature;
      Split(copy, &copy_body, &copy_signature);
      EXPECT_EQ(copy_body, body);
      EXPECT_EQ(copy_signature, signature);

      absl::StatusOr<OpenedBatch> opened = OpenBatch(copy);
      EXPECT_EQ(opened.status().code(), absl::StatusCode::kInvalidArgument) << opened.status();
      EXPECT_EQ(opened.status().message(), "batch envelope is not in canonical form");
      EXPECT_TRUE(IsNonCanonicalEnvelope(opened.status()));
      EXPECT_FALSE(IsBadSignature(opened.status()));
    }
  }
}

TEST_F(BatchTest, EveryChangedByteIsRefused) {
  // Equal signed content is equal bytes: no byte of a batch can change and
  // still open.
  const std::string honest = Seal(40);
  for (size_t i = 0; i < honest.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string b = honest;
      b[i] = static_cast<char>(b[i] ^ (1 << bit));
      EXPECT_FALSE(OpenBatch(b).ok()) << "byte " << i << " bit " << bit;
    }
  }
}

TEST_F(BatchTest, EnvelopesWithAnEmptyOrMissingSignatureAreRefused) {
  std::string body, signature;
  Split(Seal(40), &body, &signature);
  const std::string empty = Reencode(body, "", 1 << 16, false);
  EXPECT_EQ(OpenBatch(empty).status().code(), absl::StatusCode::kUnauthenticated);
  capnp::MallocMessageBuilder message;
  message.initRoot<schema::SignedBatch>().setBody(AsCapnpData(body));  // no signature pointer
  const absl::Status missing = OpenBatch(MessageToBytes(message)).status();
  EXPECT_TRUE(missing.code() == absl::StatusCode::kUnauthenticated ||
              missing.code() == absl::StatusCode::kInvalidArgument)
      << missing;
}

TEST_F(BatchTest, BadSignatureNamesTheWholeAuthorKey) {
  std::string b = Seal(40);
  b[b.size() - 1] = static_cast<char>(b[b.size() - 1] ^ 1);  // the signature's last byte
  absl::StatusOr<OpenedBatch> opened = OpenBatch(b);
  EXPECT_EQ(opened.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(opened.status().message(),
            absl::StrCat("batch signature by ", key_->public_key().Hex(), " does not verify"));
  EXPECT_TRUE(IsBadSignature(opened.status()));
  EXPECT_FALSE(IsNonCanonicalEnvelope(opened.status()));
}

}  // namespace
}  // namespace edgesync::transport
