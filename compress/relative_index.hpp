// Relative (run-length) sparse indices with filler zeros, as in Deep Compression / EIE.
//
// A dense array of value codes (0 = zero weight) becomes a stream of entries (z, v): z is the
// number of zero positions skipped before the entry (the gap to the previous entry minus 1), v the
// value code. With b index bits z <= 2^b - 1, so one entry jumps at most 2^b positions. A longer
// run of zeros is bridged by *filler* entries (z = 2^b - 1, v = 0), i.e. a gap G needs
// ceil(G / 2^b) - 1 fillers. The first entry's gap is counted from position -1, and trailing zeros
// after the last non-zero produce no entries (the decoder knows the length).
//
// Example (b = 4, length 23): non-zeros 1, 2, 3 at rows 2, 3, 22 encode as v = [1, 2, 0, 3],
// z = [2, 0, 15, 2]; entry rows are cumsum(z + 1) - 1 = [2, 3, 19, 22] (row 19 is the filler).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace dsg::compress {

struct RelativeEntries {
  std::vector<uint32_t> z;  // zeros skipped before each entry, each < 2^index_bits
  std::vector<uint32_t> v;  // value code of each entry (0 for fillers)
};

// Encodes a dense code array (0 = zero) with `index_bits` (1..32) bits per relative index.
// Throws dsg::Error if index_bits is out of range.
RelativeEntries encode_relative(const std::vector<uint32_t>& dense_codes, int index_bits);

// Decodes entries back to `length` dense codes. Throws dsg::Error if z and v differ in size, a z
// is >= 2^index_bits, or an entry lands at or past `length`.
std::vector<uint32_t> decode_relative(const RelativeEntries& entries, int index_bits, size_t length);

// Fillers needed to bridge a gap of `gap` >= 1 positions: ceil(gap / 2^index_bits) - 1.
uint64_t fillers_for_gap(uint64_t gap, int index_bits);

// Number of filler entries encode_relative(dense_codes, index_bits) would produce.
size_t filler_count(const std::vector<uint32_t>& dense_codes, int index_bits);

}  // namespace dsg::compress
