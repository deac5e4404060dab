#include "compress/relative_index.hpp"

#include "runtime/error.hpp"

namespace dsg::compress {

namespace {

// 2^index_bits, the longest jump one entry can make.
uint64_t span_of(int index_bits) {
  if (index_bits < 1 || index_bits > 32)
    throw Error(strfmt("relative index: index_bits %d is outside 1..32", index_bits));
  return uint64_t(1) << index_bits;
}

}  // namespace

RelativeEntries encode_relative(const std::vector<uint32_t>& dense_codes, int index_bits) {
  const uint64_t span = span_of(index_bits);
  const uint32_t max_z = uint32_t(span - 1);
  RelativeEntries e;
  uint64_t zeros = 0;  // zero positions since the previous entry
  for (uint32_t code : dense_codes) {
    if (code == 0) {
      ++zeros;
      continue;
    }
    for (; zeros > max_z; zeros -= span) {
      e.z.push_back(max_z);
      e.v.push_back(0);
    }
    e.z.push_back(uint32_t(zeros));
    e.v.push_back(code);
    zeros = 0;
  }
  return e;
}

std::vector<uint32_t> decode_relative(const RelativeEntries& entries, int index_bits, size_t length) {
  const uint64_t span = span_of(index_bits);
  if (entries.z.size() != entries.v.size())
    throw Error(strfmt("relative index: %zu z values but %zu v values", entries.z.size(), entries.v.size()));
  std::vector<uint32_t> dense(length, 0);
  uint64_t pos = 0;  // next position an entry may occupy
  for (size_t i = 0; i < entries.z.size(); ++i) {
    const uint64_t z = entries.z[i];
    if (z >= span) throw Error(strfmt("relative index: entry %zu skips %llu >= 2^%d zeros", i, (unsigned long long)z, index_bits));
    pos += z;  // pos <= i * 2^32 + ...: no overflow
    if (pos >= length)
      throw Error(strfmt("relative index: entry %zu lands at %llu, past the length %zu", i, (unsigned long long)pos, length));
    dense[size_t(pos)] = entries.v[i];
    ++pos;
  }
  return dense;
}

uint64_t fillers_for_gap(uint64_t gap, int index_bits) {
  const uint64_t span = span_of(index_bits);
  if (gap == 0) throw Error("relative index: a gap must be >= 1");
  return (gap - 1) / span;  // == ceil(gap / span) - 1
}

size_t filler_count(const std::vector<uint32_t>& dense_codes, int index_bits) {
  const uint64_t span = span_of(index_bits);
  size_t fillers = 0;
  uint64_t gap = 1;  // distance from the previous entry (position -1 initially)
  for (uint32_t code : dense_codes) {
    if (code == 0) {
      ++gap;
      continue;
    }
    fillers += size_t((gap - 1) / span);
    gap = 1;
  }
  return fillers;
}

}  // namespace dsg::compress
