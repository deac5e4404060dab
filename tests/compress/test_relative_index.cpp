// Relative (run-length) sparse indices with filler zeros (Deep Compression / EIE).
#include <catch2/catch.hpp>

#include <random>
#include <vector>

#include "compress/relative_index.hpp"
#include "runtime/error.hpp"

using namespace dsg;
using namespace dsg::compress;

namespace {

// Entry rows: cumsum(z + 1) - 1.
std::vector<size_t> entry_rows(const RelativeEntries& e) {
  std::vector<size_t> rows;
  size_t pos = 0;
  for (uint32_t z : e.z) {
    pos += z + 1;
    rows.push_back(pos - 1);
  }
  return rows;
}

// Dense array of `length` with non-zeros only at `first` and `first + gap`.
std::vector<uint32_t> two_nonzeros(size_t first, size_t gap) {
  std::vector<uint32_t> d(first + gap + 1, 0);
  d[first] = 5;
  d[first + gap] = 7;
  return d;
}

}  // namespace

TEST_CASE("relative index: the paper's column with 4 index bits", "[compress][relative_index]") {
  std::vector<uint32_t> col = {0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3};
  REQUIRE(col.size() == 23);
  RelativeEntries e = encode_relative(col, 4);
  CHECK(e.v == std::vector<uint32_t>{1, 2, 0, 3});
  CHECK(e.z == std::vector<uint32_t>{2, 0, 15, 2});
  CHECK(entry_rows(e) == std::vector<size_t>{2, 3, 19, 22});
  CHECK(filler_count(col, 4) == 1);
  CHECK(decode_relative(e, 4, 23) == col);
  // Trailing zeros produce no entries.
  std::vector<uint32_t> longer = col;
  longer.resize(100, 0);
  RelativeEntries e2 = encode_relative(longer, 4);
  CHECK(e2.z == e.z);
  CHECK(e2.v == e.v);
  CHECK(decode_relative(e2, 4, 100) == longer);
}

TEST_CASE("relative index: a gap G needs ceil(G / 2^b) - 1 fillers", "[compress][relative_index]") {
  // b = 3: a gap of 8 positions needs no filler, a gap of 9 needs one.
  RelativeEntries g8 = encode_relative(two_nonzeros(0, 8), 3);
  CHECK(g8.z == std::vector<uint32_t>{0, 7});
  CHECK(g8.v == std::vector<uint32_t>{5, 7});
  RelativeEntries g9 = encode_relative(two_nonzeros(0, 9), 3);
  CHECK(g9.z == std::vector<uint32_t>{0, 7, 0});
  CHECK(g9.v == std::vector<uint32_t>{5, 0, 7});
  CHECK(fillers_for_gap(8, 3) == 0);
  CHECK(fillers_for_gap(9, 3) == 1);
  for (int b : {1, 2, 3, 4, 5, 8}) {
    for (size_t gap = 1; gap <= 700; ++gap) {
      std::vector<uint32_t> d = two_nonzeros(3, gap);
      RelativeEntries e = encode_relative(d, b);
      size_t span = size_t(1) << b;
      size_t expected = (gap + span - 1) / span - 1;  // ceil(G / 2^b) - 1
      size_t first_fillers = (3 + 1 + span - 1) / span - 1;  // the first entry's gap is 4
      INFO("b=" << b << " gap=" << gap);
      REQUIRE(fillers_for_gap(gap, b) == expected);
      REQUIRE(e.z.size() == 2 + expected + first_fillers);
      REQUIRE(filler_count(d, b) == expected + first_fillers);
      REQUIRE(decode_relative(e, b, d.size()) == d);
    }
  }
}

TEST_CASE("relative index: random round trips", "[compress][relative_index]") {
  std::mt19937 rng(7);
  for (int b : {2, 3, 4, 5, 8}) {
    for (double density : {0.01, 0.05, 0.1, 0.3, 0.5, 0.9}) {
      const size_t length = 1 + rng() % 5000;
      std::bernoulli_distribution nz(density);
      std::vector<uint32_t> d(length, 0);
      size_t nonzeros = 0;
      for (auto& c : d)
        if (nz(rng)) {
          c = 1 + rng() % 255;
          ++nonzeros;
        }
      RelativeEntries e = encode_relative(d, b);
      INFO("b=" << b << " density=" << density << " length=" << length);
      REQUIRE(e.z.size() == e.v.size());
      CHECK(e.z.size() == nonzeros + filler_count(d, b));
      size_t fillers = 0, bad_z = 0;
      for (size_t i = 0; i < e.z.size(); ++i) {
        bad_z += e.z[i] >= (1u << b);
        if (e.v[i] == 0) {
          ++fillers;
          bad_z += e.z[i] != (1u << b) - 1;  // fillers always make the longest jump
        }
      }
      CHECK(bad_z == 0);
      CHECK(fillers == filler_count(d, b));
      CHECK(decode_relative(e, b, length) == d);
    }
  }
  // Edge cases: empty, all zero, all non-zero.
  CHECK(encode_relative({}, 4).z.empty());
  CHECK(encode_relative(std::vector<uint32_t>(1000, 0), 4).z.empty());
  CHECK(decode_relative(RelativeEntries{}, 4, 1000) == std::vector<uint32_t>(1000, 0));
  std::vector<uint32_t> full(50, 9);
  RelativeEntries ef = encode_relative(full, 2);
  CHECK(ef.z == std::vector<uint32_t>(50, 0));
  CHECK(decode_relative(ef, 2, 50) == full);
}

TEST_CASE("relative index: decode rejects malformed entries", "[compress][relative_index]") {
  std::vector<uint32_t> col = {0, 0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3};
  RelativeEntries e = encode_relative(col, 4);
  // An entry at or past the length.
  CHECK_THROWS_AS(decode_relative(e, 4, 22), Error);
  CHECK_THROWS_WITH(decode_relative(e, 4, 10), Catch::Contains("past the length"));
  CHECK_THROWS_AS(decode_relative(RelativeEntries{{0}, {1}}, 4, 0), Error);
  CHECK_THROWS_AS(decode_relative(RelativeEntries{{15, 15}, {0, 1}}, 4, 31), Error);
  CHECK_NOTHROW(decode_relative(RelativeEntries{{15, 15}, {0, 1}}, 4, 32));
  // z >= 2^b.
  RelativeEntries big = e;
  big.z[0] = 16;
  CHECK_THROWS_AS(decode_relative(big, 4, 1000), Error);
  // Size mismatch.
  RelativeEntries mismatch = e;
  mismatch.v.pop_back();
  CHECK_THROWS_AS(decode_relative(mismatch, 4, 23), Error);
  // Bad index_bits.
  CHECK_THROWS_AS(encode_relative(col, 0), Error);
  CHECK_THROWS_AS(encode_relative(col, 33), Error);
  CHECK_THROWS_AS(decode_relative(e, 0, 23), Error);
  // Huge z values with 32 index bits cannot overflow the position.
  RelativeEntries huge{{0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, {0, 0, 1}};
  CHECK_THROWS_AS(decode_relative(huge, 32, 100), Error);
}
