#include "crdt/state_hash.h"

namespace edgesync::crdt {

namespace {
uint64_t Lane(const ElementHash& h, size_t i) {
  uint64_t v = 0;
  for (size_t b = 0; b < 8; ++b) v |= static_cast<uint64_t>(h[i * 8 + b]) << (8 * b);
  return v;
}
}  // namespace

void StateHashSum::Add(const ElementHash& h) {
  for (size_t i = 0; i < 8; ++i) lanes_[i] += Lane(h, i);
  ++count_;
}

void StateHashSum::Remove(const ElementHash& h) {
  for (size_t i = 0; i < 8; ++i) lanes_[i] -= Lane(h, i);
  --count_;
}

std::string StateHashSum::Encode() const {
  std::string out;
  out.reserve(72);
  auto put = [&out](uint64_t v) {
    for (size_t b = 0; b < 8; ++b) out.push_back(static_cast<char>((v >> (8 * b)) & 0xff));
  };
  for (uint64_t lane : lanes_) put(lane);
  put(count_);
  return out;
}

absl::StatusOr<StateHashSum> StateHashSum::Decode(absl::string_view bytes) {
  if (bytes.size() != 72) return absl::DataLossError("state hash sum is not 72 bytes");
  auto get = [&bytes](size_t offset) {
    uint64_t v = 0;
    for (size_t b = 0; b < 8; ++b) {
      v |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[offset + b])) << (8 * b);
    }
    return v;
  };
  StateHashSum s;
  for (size_t i = 0; i < 8; ++i) s.lanes_[i] = get(i * 8);
  s.count_ = get(64);
  return s;
}

}  // namespace edgesync::crdt
