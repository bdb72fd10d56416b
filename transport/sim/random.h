// File: transport/sim/random.h
//
// Random: the simulator's only source of randomness, a seeded xoshiro256**
// generator. Everything a simulation decides (workload, faults, delays,
// keys) comes from one seed through it, so a seed replays exactly: the
// sequence depends on nothing but the seed and the order of calls.
//
//   transport::sim::Random rng(seed);
//   if (rng.Chance(0.1)) { ... }
//   uint64_t delay_us = rng.Range(100, 5000);
//   transport::sim::Random child = rng.Fork();   // an independent stream

#ifndef EDGESYNC_TRANSPORT_SIM_RANDOM_H_
#define EDGESYNC_TRANSPORT_SIM_RANDOM_H_

#include <cstdint>
#include <string>
#include <vector>

namespace edgesync::transport::sim {

// Thread-compatible value type.
class Random {
 public:
  explicit Random(uint64_t seed) {
    // SplitMix64 expands the seed into the 256-bit state.
    for (uint64_t& word : s_) {
      seed += 0x9e3779b97f4a7c15ull;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      word = z ^ (z >> 31);
    }
  }

  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, n). REQUIRES: n > 0.
  uint64_t Uniform(uint64_t n) {
    // Rejection keeps it unbiased; plain integer arithmetic keeps it
    // identical on every platform.
    const uint64_t limit = (UINT64_MAX / n) * n;
    uint64_t r = Next();
    while (r >= limit) r = Next();
    return r % n;
  }
  // Uniform in [lo, hi]. REQUIRES: lo <= hi.
  uint64_t Range(uint64_t lo, uint64_t hi) {
    if (hi - lo == UINT64_MAX) return Next();
    return lo + Uniform(hi - lo + 1);
  }
  // Uniform in [0, 1), 53 bits.
  double Unit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }
  // True with probability p.
  bool Chance(double p) { return p > 0 && Unit() < p; }
  // About log-uniform in [lo, hi] (a uniform bit length, then a uniform
  // value of that length): as many draws per doubling, for durations that
  // span milliseconds to months. Integer-only, so identical everywhere.
  // REQUIRES: 0 < lo <= hi.
  uint64_t LogRange(uint64_t lo, uint64_t hi) {
    const int lo_bits = BitLength(lo);
    const int hi_bits = BitLength(hi);
    const int bits =
        static_cast<int>(Range(static_cast<uint64_t>(lo_bits), static_cast<uint64_t>(hi_bits)));
    uint64_t first = uint64_t{1} << (bits - 1);
    uint64_t last = bits == 64 ? UINT64_MAX : (uint64_t{1} << bits) - 1;
    if (first < lo) first = lo;
    if (last > hi) last = hi;
    return Range(first, last);
  }
  // An element of a non-empty vector.
  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[static_cast<size_t>(Uniform(v.size()))];
  }
  // Fisher-Yates.
  template <typename T>
  void Shuffle(std::vector<T>* v) {
    for (size_t i = v->size(); i > 1; --i) {
      const size_t j = static_cast<size_t>(Uniform(i));
      std::swap((*v)[i - 1], (*v)[j]);
    }
  }
  // `n` bytes.
  std::string Bytes(size_t n) {
    std::string out(n, '\0');
    for (char& c : out) c = static_cast<char>(Next() >> 56);
    return out;
  }
  // A new generator seeded from this one: a sub-system given its own
  // stream keeps its draws when another sub-system draws more or less.
  Random Fork() { return Random(Next()); }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static int BitLength(uint64_t x) {
    int n = 0;
    while (x != 0) {
      ++n;
      x >>= 1;
    }
    return n;
  }
  uint64_t s_[4];
};

}  // namespace edgesync::transport::sim

#endif  // EDGESYNC_TRANSPORT_SIM_RANDOM_H_
