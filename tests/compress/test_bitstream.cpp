// BitWriter/BitReader: LSB-first packing, round trips at every width, truncation errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <utility>
#include <vector>

#include "compress/bitstream.hpp"
#include "runtime/error.hpp"

using namespace dsg;
using namespace dsg::compress;

TEST_CASE("BitWriter packs LSB-first and pads the last byte with zeros", "[compress][bitstream]") {
  BitWriter w;
  w.put(1, 1);     // bit 0
  w.put(0, 1);     // bit 1
  w.put(0x3, 2);   // bits 2,3
  w.put(0x5, 3);   // bits 4..6 = 1,0,1
  w.put(0x1, 2);   // bit 7 = 1, bit 8 = 0
  CHECK(w.bit_count() == 9);
  std::vector<uint8_t> bytes = w.finish();
  REQUIRE(bytes.size() == 2);
  CHECK(bytes[0] == 0xDD);  // 1101 1101
  CHECK(bytes[1] == 0x00);
  CHECK(w.bit_count() == 0);  // finish resets

  BitReader r(bytes.data(), bytes.size());
  CHECK(r.bits_left() == 16);
  CHECK(r.get_bit() == 1);
  CHECK(r.get(1) == 0);
  CHECK(r.get(2) == 3);
  CHECK(r.get(3) == 5);
  CHECK(r.get(2) == 1);
  CHECK(r.bits_left() == 7);
}

TEST_CASE("bit round trips at all widths 0..32 with random values", "[compress][bitstream]") {
  std::mt19937_64 rng(42);
  std::vector<std::pair<int, uint32_t>> items;
  for (int rep = 0; rep < 200; ++rep)
    for (int n = 0; n <= 32; ++n) {
      uint64_t mask = n == 0 ? 0 : (uint64_t(1) << n) - 1;
      items.emplace_back(n, uint32_t(rng() & mask));
    }
  std::shuffle(items.begin(), items.end(), rng);
  BitWriter w;
  size_t total = 0;
  for (auto& it : items) {
    w.put(it.second, it.first);
    total += size_t(it.first);
  }
  CHECK(w.bit_count() == total);
  std::vector<uint8_t> bytes = w.finish();
  CHECK(bytes.size() == (total + 7) / 8);
  BitReader r(bytes.data(), bytes.size());
  size_t mismatches = 0;
  for (auto& it : items) mismatches += r.get(it.first) != it.second;
  CHECK(mismatches == 0);
  CHECK(r.bits_left() == bytes.size() * 8 - total);
  CHECK(r.bits_left() < 8);
}

TEST_CASE("BitWriter rejects bad widths and values that do not fit", "[compress][bitstream]") {
  BitWriter w;
  CHECK_THROWS_AS(w.put(0, 33), Error);
  CHECK_THROWS_AS(w.put(0, -1), Error);
  CHECK_THROWS_AS(w.put(4, 2), Error);
  CHECK_THROWS_AS(w.put(uint64_t(1) << 32, 32), Error);
  CHECK_THROWS_AS(w.put(1, 0), Error);
  CHECK_NOTHROW(w.put(0xFFFFFFFFu, 32));
}

TEST_CASE("BitReader throws on truncation and never reads past the end", "[compress][bitstream]") {
  std::vector<uint8_t> bytes = {0xAB, 0xCD, 0xEF};
  {
    BitReader r(bytes.data(), bytes.size());
    CHECK(r.get(20) == 0xFCDABu);
    CHECK(r.get(4) == 0xE);
    CHECK(r.bits_left() == 0);
    CHECK(r.get(0) == 0);
    CHECK_THROWS_WITH(r.get(1), Catch::Contains("truncated"));
    CHECK_THROWS_AS(r.get_bit(), Error);
  }
  {
    BitReader r(bytes.data(), bytes.size());
    CHECK_THROWS_WITH(r.get(25), Catch::Contains("truncated"));
  }
  {
    BitReader r(nullptr, 0);
    CHECK(r.bits_left() == 0);
    CHECK_THROWS_AS(r.get_bit(), Error);
    CHECK_THROWS_AS(r.get(32), Error);
  }
  {
    // Reading bit by bit consumes exactly the buffer.
    BitReader r(bytes.data(), bytes.size());
    uint32_t ones = 0;
    for (int i = 0; i < 24; ++i) ones += r.get_bit();
    CHECK(ones == 5 + 5 + 7);  // popcount(0xAB) + popcount(0xCD) + popcount(0xEF)
    CHECK_THROWS_AS(r.get_bit(), Error);
  }
  CHECK_THROWS_AS(BitReader(bytes.data(), bytes.size()).get(33), Error);
}
