// Canonical, length-limited Huffman coding: optimality, length limits, table validation, round
// trips and robustness against corrupt streams.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <queue>
#include <random>
#include <vector>

#include "compress/bitstream.hpp"
#include "compress/huffman.hpp"
#include "runtime/error.hpp"

using namespace dsg;
using namespace dsg::compress;

namespace {

// Kraft sum scaled by 2^30.
uint64_t kraft(const std::vector<uint8_t>& lengths) {
  uint64_t k = 0;
  for (uint8_t l : lengths)
    if (l > 0) k += uint64_t(1) << (30 - l);
  return k;
}
constexpr uint64_t kKraftOne = uint64_t(1) << 30;

// Cost (sum freq * length) of an unconstrained optimal Huffman code, via the classic heap merge.
uint64_t huffman_cost(const std::vector<uint64_t>& freq) {
  std::priority_queue<uint64_t, std::vector<uint64_t>, std::greater<uint64_t>> q;
  for (uint64_t f : freq)
    if (f > 0) q.push(f);
  if (q.size() == 1) return q.top();
  uint64_t cost = 0;
  while (q.size() > 1) {
    uint64_t a = q.top();
    q.pop();
    uint64_t b = q.top();
    q.pop();
    cost += a + b;
    q.push(a + b);
  }
  return cost;
}

// Cost of the best length assignment in [1, L]^n with Kraft <= 1, by exhaustive search.
uint64_t brute_force_limited_cost(const std::vector<uint64_t>& freq, int L) {
  const size_t n = freq.size();
  std::vector<uint8_t> len(n, 1);
  uint64_t best = UINT64_MAX;
  std::function<void(size_t)> rec = [&](size_t i) {
    if (i == n) {
      if (kraft(len) > kKraftOne) return;
      uint64_t c = 0;
      for (size_t s = 0; s < n; ++s) c += freq[s] * len[s];
      best = std::min(best, c);
      return;
    }
    for (int l = 1; l <= L; ++l) {
      len[i] = uint8_t(l);
      rec(i + 1);
    }
  };
  rec(0);
  return best;
}

// Symbols drawn from a geometric-like skewed distribution over `used` symbols of the alphabet.
std::vector<uint32_t> skewed_symbols(std::mt19937_64& rng, size_t n, const std::vector<uint32_t>& used, double p) {
  std::geometric_distribution<size_t> g(p);
  std::vector<uint32_t> out(n);
  for (auto& s : out) s = used[std::min(g(rng), used.size() - 1)];
  return out;
}

// huffman_unpack either succeeds (with every symbol inside the alphabet) or throws dsg::Error;
// any other exception or a crash fails the test.
bool unpack_or_error(const std::vector<uint8_t>& bytes, size_t alphabet, size_t count) {
  try {
    std::vector<uint32_t> out = huffman_unpack(bytes.data(), bytes.size(), alphabet, count);
    REQUIRE(out.size() == count);
    REQUIRE(std::all_of(out.begin(), out.end(), [&](uint32_t s) { return s < alphabet; }));
    return true;
  } catch (const dsg::Error&) {
    return false;
  }
}

}  // namespace

TEST_CASE("Huffman: dyadic frequencies give their exact code lengths", "[compress][huffman]") {
  HuffmanCode c = HuffmanCode::from_frequencies({4, 2, 1, 1});
  CHECK(c.lengths() == std::vector<uint8_t>{1, 2, 3, 3});
  CHECK(c.encoded_bits({4, 2, 1, 1}) == 4 * 1 + 2 * 2 + 1 * 3 + 1 * 3);
  CHECK(kraft(c.lengths()) == kKraftOne);
  // Unused symbols interleaved get no code.
  HuffmanCode c2 = HuffmanCode::from_frequencies({0, 1, 0, 4, 1, 2, 0});
  CHECK(c2.lengths() == std::vector<uint8_t>{0, 3, 0, 1, 3, 2, 0});
  CHECK(c2.max_code_length() == 3);
  CHECK_THROWS_AS(c2.encoded_bits({1, 1}), Error);  // symbol 0 has no code
  // Huge counts are scaled internally without overflow.
  const uint64_t big = uint64_t(1) << 62;
  CHECK(HuffmanCode::from_frequencies({big, big / 2, big / 4, big / 4}).lengths() == std::vector<uint8_t>{1, 2, 3, 3});
  CHECK(HuffmanCode::from_frequencies({UINT64_MAX, UINT64_MAX, 1}).max_code_length() == 2);
}

TEST_CASE("Huffman: package-merge is optimal", "[compress][huffman]") {
  std::mt19937_64 rng(3);
  SECTION("matches an unconstrained Huffman code when the limit does not bind") {
    for (int trial = 0; trial < 200; ++trial) {
      size_t n = 2 + rng() % 300;
      std::vector<uint64_t> freq(n);
      for (auto& f : freq) f = rng() % 4 == 0 ? 0 : 1 + rng() % (1 + rng() % 100000);
      freq[0] = std::max<uint64_t>(freq[0], 1);
      freq[1] = std::max<uint64_t>(freq[1], 1);
      HuffmanCode c = HuffmanCode::from_frequencies(freq, 30);
      REQUIRE(kraft(c.lengths()) == kKraftOne);  // optimal codes are complete
      REQUIRE(c.encoded_bits(freq) == huffman_cost(freq));
    }
  }
  SECTION("matches exhaustive search under a binding limit") {
    for (int trial = 0; trial < 150; ++trial) {
      size_t n = 2 + rng() % 5;  // 2..6 symbols
      int L = 3;
      std::vector<uint64_t> freq(n);
      for (auto& f : freq) f = 1 + rng() % (rng() % 2 ? 10 : 5000);
      HuffmanCode c = HuffmanCode::from_frequencies(freq, L);
      REQUIRE(c.max_code_length() <= L);
      REQUIRE(kraft(c.lengths()) <= kKraftOne);
      REQUIRE(c.encoded_bits(freq) == brute_force_limited_cost(freq, L));
    }
  }
}

TEST_CASE("Huffman: the length limit holds for Fibonacci frequencies", "[compress][huffman]") {
  std::vector<uint64_t> fib = {1, 1};
  while (fib.size() < 40) fib.push_back(fib[fib.size() - 1] + fib[fib.size() - 2]);
  // Unconstrained, Fibonacci weights make a maximally deep tree.
  HuffmanCode deep = HuffmanCode::from_frequencies(std::vector<uint64_t>(fib.begin(), fib.begin() + 25), 30);
  CHECK(deep.max_code_length() == 24);
  for (int max_length : {6, 8, 12, 20}) {
    HuffmanCode c = HuffmanCode::from_frequencies(fib, max_length);
    INFO("max_length=" << max_length);
    CHECK(c.max_code_length() == max_length);
    CHECK(kraft(c.lengths()) <= kKraftOne);
    for (uint8_t l : c.lengths()) CHECK((l >= 1 && l <= max_length));
    // Heavier symbols never get longer codes.
    for (size_t s = 1; s < fib.size(); ++s) CHECK(c.lengths()[s] <= c.lengths()[s - 1]);
  }
  // 40 used symbols cannot all get codes of at most 5 bits (2^5 = 32).
  CHECK_THROWS_AS(HuffmanCode::from_frequencies(fib, 5), Error);
  CHECK_THROWS_AS(HuffmanCode::from_frequencies(fib, 0), Error);
  CHECK_THROWS_AS(HuffmanCode::from_frequencies(fib, 31), Error);
}

TEST_CASE("Huffman: degenerate alphabets", "[compress][huffman]") {
  SECTION("no used symbols: an empty code that encodes only empty streams") {
    HuffmanCode c = HuffmanCode::from_frequencies(std::vector<uint64_t>(10, 0));
    CHECK(c.lengths() == std::vector<uint8_t>(10, 0));
    CHECK(c.max_code_length() == 0);
    BitWriter w;
    c.write_table(w);
    c.encode(nullptr, 0, w);
    uint32_t s = 3;
    CHECK_THROWS_AS(c.encode(&s, 1, w), Error);
    std::vector<uint8_t> bytes = w.finish();
    BitReader r(bytes.data(), bytes.size());
    HuffmanCode back = HuffmanCode::read_table(r, 10);
    CHECK(back.lengths() == c.lengths());
    uint32_t out = 0;
    CHECK_THROWS_AS(back.decode(r, 1, &out), Error);
    CHECK(huffman_unpack(huffman_pack({}, 10).data(), huffman_pack({}, 10).size(), 10, 0).empty());
    CHECK(huffman_unpack(huffman_pack({}, 0).data(), 0, 0, 0).empty());
  }
  SECTION("a single used symbol gets length 1") {
    std::vector<uint64_t> freq(300, 0);
    freq[123] = 1000;
    HuffmanCode c = HuffmanCode::from_frequencies(freq);
    CHECK(c.lengths()[123] == 1);
    CHECK(c.encoded_bits(freq) == 1000);
    std::vector<uint32_t> symbols(1000, 123);
    std::vector<uint8_t> packed = huffman_pack(symbols, 300);
    CHECK(huffman_unpack(packed.data(), packed.size(), 300, 1000) == symbols);
    // The unassigned bit pattern '1' is an invalid code.
    BitWriter w;
    c.write_table(w);
    w.put(1, 1);
    std::vector<uint8_t> bad = w.finish();
    CHECK_THROWS_WITH(huffman_unpack(bad.data(), bad.size(), 300, 1), Catch::Contains("invalid code"));
  }
  SECTION("two symbols get one bit each") {
    HuffmanCode c = HuffmanCode::from_frequencies({0, 999, 1});
    CHECK(c.lengths() == std::vector<uint8_t>{0, 1, 1});
  }
}

TEST_CASE("Huffman: round trips on random skewed data", "[compress][huffman]") {
  std::mt19937_64 rng(11);
  struct Case {
    size_t alphabet, used, n;
    double p;
  };
  for (Case k : {Case{1, 1, 500, 0.5}, Case{2, 2, 5000, 0.2}, Case{2, 2, 5000, 0.9}, Case{16, 16, 20000, 0.3},
                 Case{256, 256, 100000, 0.05}, Case{256, 40, 50000, 0.5}, Case{65536, 300, 100000, 0.02},
                 Case{65536, 65536, 300000, 0.0001}, Case{1000, 999, 1, 0.5}}) {
    INFO("alphabet=" << k.alphabet << " used=" << k.used << " n=" << k.n);
    std::vector<uint32_t> used(k.alphabet);
    for (size_t i = 0; i < k.alphabet; ++i) used[i] = uint32_t(i);
    std::shuffle(used.begin(), used.end(), rng);
    used.resize(k.used);
    std::vector<uint32_t> symbols = skewed_symbols(rng, k.n, used, k.p);

    std::vector<uint64_t> freq(k.alphabet, 0);
    for (uint32_t s : symbols) ++freq[s];
    HuffmanCode code = HuffmanCode::from_frequencies(freq);
    REQUIRE(code.max_code_length() <= kDefaultHuffmanMaxLength);
    REQUIRE(kraft(code.lengths()) <= kKraftOne);
    BitWriter w;
    code.write_table(w);
    const size_t table_bits = w.bit_count();
    code.encode(symbols.data(), symbols.size(), w);
    CHECK(w.bit_count() - table_bits == code.encoded_bits(freq));

    std::vector<uint8_t> packed = huffman_pack(symbols, k.alphabet);
    CHECK(packed == w.finish());
    CHECK(packed.size() == (table_bits + code.encoded_bits(freq) + 7) / 8);
    CHECK(huffman_unpack(packed.data(), packed.size(), k.alphabet, symbols.size()) == symbols);

    // An optimal code is never worse than a fixed-length code over the alphabet.
    const int fixed_bits = k.alphabet <= 1 ? 1 : int(std::ceil(std::log2(double(k.alphabet))));
    CHECK(code.encoded_bits(freq) <= uint64_t(fixed_bits) * k.n);
  }
}

TEST_CASE("Huffman: encoded size beats fixed-length coding on skewed data", "[compress][huffman]") {
  std::mt19937_64 rng(5);
  std::vector<uint32_t> used(256);
  for (size_t i = 0; i < used.size(); ++i) used[i] = uint32_t(i);
  std::vector<uint32_t> symbols = skewed_symbols(rng, 200000, used, 0.1);
  std::vector<uint8_t> packed = huffman_pack(symbols, 256);
  CHECK(packed.size() < symbols.size());                  // < 8 bits per symbol
  CHECK(packed.size() * 8 < symbols.size() * 5);           // entropy of geometric(0.1) ~ 4.7 bits
}

TEST_CASE("Huffman: corrupt tables are rejected", "[compress][huffman]") {
  SECTION("over-subscribed (Kraft sum > 1)") {
    BitWriter w;
    for (int i = 0; i < 3; ++i) w.put(1, 5);  // three codes of length 1
    std::vector<uint8_t> bytes = w.finish();
    BitReader r(bytes.data(), bytes.size());
    CHECK_THROWS_WITH(HuffmanCode::read_table(r, 3), Catch::Contains("over-subscribed"));
    CHECK_THROWS_AS(HuffmanCode::from_lengths({1, 2, 2, 3}), Error);
    CHECK_NOTHROW(HuffmanCode::from_lengths({1, 2, 3, 3}));
    CHECK_NOTHROW(HuffmanCode::from_lengths({2, 2, 3}));  // incomplete is fine
  }
  SECTION("a zero run past the alphabet") {
    BitWriter w;
    w.put(2, 5);
    w.put(31, 5);
    w.put(99, 16);  // 100 unused symbols
    std::vector<uint8_t> bytes = w.finish();
    BitReader r(bytes.data(), bytes.size());
    CHECK_THROWS_WITH(HuffmanCode::read_table(r, 50), Catch::Contains("overruns"));
  }
  SECTION("lengths out of range and truncated tables") {
    CHECK_THROWS_AS(HuffmanCode::from_lengths({31, 1}), Error);
    CHECK_THROWS_AS(HuffmanCode::from_lengths(std::vector<uint8_t>(65537, 0)), Error);
    HuffmanCode c = HuffmanCode::from_frequencies({5, 3, 0, 0, 0, 1, 1});
    BitWriter w;
    c.write_table(w);
    std::vector<uint8_t> bytes = w.finish();
    BitReader r(bytes.data(), bytes.size() - 1);
    CHECK_THROWS_WITH(HuffmanCode::read_table(r, 7), Catch::Contains("truncated"));
    BitReader ok(bytes.data(), bytes.size());
    CHECK(HuffmanCode::read_table(ok, 7).lengths() == c.lengths());
  }
  SECTION("symbols outside the alphabet") {
    CHECK_THROWS_AS(huffman_pack({0, 1, 4}, 4), Error);
    CHECK_THROWS_AS(huffman_pack({0}, 65537), Error);
  }
}

TEST_CASE("Huffman: garbage and mutated streams decode or throw dsg::Error", "[compress][huffman]") {
  std::mt19937_64 rng(2024);
  size_t decoded = 0, rejected = 0;
  SECTION("random bytes") {
    for (int trial = 0; trial < 3000; ++trial) {
      std::vector<uint8_t> bytes(rng() % 64);
      for (auto& b : bytes) b = uint8_t(rng());
      // Mostly zero bytes: tables of long zero runs and short codes get further.
      if (trial % 3 == 0)
        for (auto& b : bytes) b &= uint8_t(rng() % 2 ? 0x0F : 0xFF);
      const size_t alphabets[] = {0, 1, 2, 3, 16, 256, 65536};
      const size_t alphabet = alphabets[rng() % 7];
      const size_t counts[] = {0, 1, 5, 100, size_t(1) << 40, SIZE_MAX};
      const size_t count = counts[rng() % 6];
      (unpack_or_error(bytes, alphabet, count) ? decoded : rejected)++;
    }
    CHECK(decoded + rejected == 3000);
    CHECK(rejected > 0);
  }
  SECTION("bit flips and truncations of valid streams") {
    for (int stream = 0; stream < 20; ++stream) {
      const size_t alphabet = stream % 2 ? 256 : 5000;
      std::vector<uint32_t> used(alphabet);
      for (size_t i = 0; i < alphabet; ++i) used[i] = uint32_t(i);
      std::shuffle(used.begin(), used.end(), rng);
      used.resize(2 + rng() % 200);
      std::vector<uint32_t> symbols = skewed_symbols(rng, 1 + rng() % 3000, used, 0.1);
      const std::vector<uint8_t> packed = huffman_pack(symbols, alphabet);
      REQUIRE(huffman_unpack(packed.data(), packed.size(), alphabet, symbols.size()) == symbols);
      for (int m = 0; m < 200; ++m) {
        std::vector<uint8_t> bytes = packed;
        switch (m % 4) {
          case 0:  // one bit flip
            bytes[rng() % bytes.size()] ^= uint8_t(1u << (rng() % 8));
            break;
          case 1:  // several bit flips
            for (int f = 0; f < 8; ++f) bytes[rng() % bytes.size()] ^= uint8_t(1u << (rng() % 8));
            break;
          case 2:  // truncation
            bytes.resize(rng() % bytes.size());
            break;
          default:  // random byte overwrite in the table region
            bytes[rng() % std::min<size_t>(bytes.size(), 64)] = uint8_t(rng());
        }
        size_t count = symbols.size();
        if (m % 7 == 0) count += rng() % 3;
        (unpack_or_error(bytes, alphabet, count) ? decoded : rejected)++;
      }
      // Truncating any valid stream by a whole byte is always detected.
      std::vector<uint8_t> cut(packed.begin(), packed.end() - 1);
      CHECK_FALSE(unpack_or_error(cut, alphabet, symbols.size()));
    }
    CHECK(rejected > 0);
  }
}
