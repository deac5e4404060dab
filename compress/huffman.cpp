#include "compress/huffman.hpp"

#include <algorithm>
#include <numeric>
#include <utility>

#include "runtime/error.hpp"

namespace dsg::compress {

namespace {

constexpr uint32_t kShortRunField = 0;
constexpr uint32_t kLongRunField = 31;
constexpr size_t kShortRunMax = 8;      // 3 bits of run - 1
constexpr size_t kLongRunMax = 65536;   // 16 bits of run - 1

void check_alphabet(size_t alphabet_size) {
  if (alphabet_size > kMaxHuffmanAlphabet)
    throw Error(strfmt("Huffman alphabet size %zu exceeds %zu", alphabet_size, kMaxHuffmanAlphabet));
}

uint32_t reverse_bits(uint32_t code, int len) {
  uint32_t r = 0;
  for (int i = 0; i < len; ++i, code >>= 1) r = (r << 1) | (code & 1u);
  return r;
}

// Package-merge (Larmore & Hirschberg): optimal code lengths <= L for weights sorted ascending,
// 2 <= n <= 2^L. Level 0 is the top (length-1) list, level L-1 holds only the leaves; each level
// is the merge of the leaves with the pairwise packages of the level below. Selecting the 2n-2
// cheapest items of level 0 and expanding packages downwards, a leaf's code length is the number
// of levels in which it is selected.
std::vector<uint8_t> package_merge(const std::vector<uint64_t>& w, int L) {
  const size_t n = w.size();
  std::vector<std::vector<uint8_t>> is_leaf(static_cast<size_t>(L));  // per level: item is a leaf (1) or package (0)
  std::vector<uint64_t> prev(w), cur;
  is_leaf[size_t(L - 1)].assign(n, 1);
  for (int level = L - 2; level >= 0; --level) {
    const size_t np = prev.size() / 2;
    // Only the first 2n-2 items of any level can be selected.
    const size_t keep = std::min(n + np, 2 * n - 2);
    cur.clear();
    auto& flags = is_leaf[size_t(level)];
    flags.clear();
    size_t a = 0, b = 0;
    while (cur.size() < keep) {
      const bool take_leaf = a < n && (b >= np || w[a] <= prev[2 * b] + prev[2 * b + 1]);
      if (take_leaf) {
        cur.push_back(w[a++]);
        flags.push_back(1);
      } else {
        cur.push_back(prev[2 * b] + prev[2 * b + 1]);
        ++b;
        flags.push_back(0);
      }
    }
    prev.swap(cur);
  }
  std::vector<uint8_t> len(n, 0);
  size_t m = 2 * n - 2;
  for (int level = 0; level < L && m > 0; ++level) {
    const auto& flags = is_leaf[size_t(level)];
    if (m > flags.size()) throw Error("Huffman package-merge: internal error (list too short)");
    size_t leaves = 0;
    for (size_t i = 0; i < m; ++i) leaves += flags[i];
    for (size_t i = 0; i < leaves; ++i) ++len[i];
    m = 2 * (m - leaves);
  }
  return len;
}

}  // namespace

HuffmanCode HuffmanCode::from_frequencies(const std::vector<uint64_t>& freq, int max_length) {
  check_alphabet(freq.size());
  if (max_length < 1 || max_length > kMaxHuffmanCodeLength)
    throw Error(strfmt("Huffman max_length %d is outside 1..%d", max_length, kMaxHuffmanCodeLength));
  std::vector<uint32_t> used;
  uint64_t max_freq = 0;
  for (size_t s = 0; s < freq.size(); ++s)
    if (freq[s] > 0) {
      used.push_back(uint32_t(s));
      max_freq = std::max(max_freq, freq[s]);
    }
  std::vector<uint8_t> lengths(freq.size(), 0);
  if (used.size() == 1) lengths[used[0]] = 1;
  if (used.size() >= 2) {
    if (used.size() > (size_t(1) << max_length))
      throw Error(strfmt("%zu Huffman symbols cannot have codes of at most %d bits", used.size(), max_length));
    // Package weights stay below L * total <= 30 * 65536 * max_freq; scale huge counts down to
    // max_freq < 2^42 so those sums cannot overflow 64 bits.
    int shift = 0;
    while ((max_freq >> shift) >= (uint64_t(1) << 42)) ++shift;
    std::stable_sort(used.begin(), used.end(), [&](uint32_t a, uint32_t b) { return freq[a] < freq[b]; });
    std::vector<uint64_t> w(used.size());
    for (size_t i = 0; i < used.size(); ++i) w[i] = std::max<uint64_t>(1, freq[used[i]] >> shift);
    std::vector<uint8_t> len = package_merge(w, max_length);
    for (size_t i = 0; i < used.size(); ++i) lengths[used[i]] = len[i];
  }
  return from_lengths(std::move(lengths));
}

HuffmanCode HuffmanCode::from_lengths(std::vector<uint8_t> lengths) {
  check_alphabet(lengths.size());
  HuffmanCode c;
  c.count_.assign(kMaxHuffmanCodeLength + 1, 0);
  for (size_t s = 0; s < lengths.size(); ++s) {
    if (lengths[s] > kMaxHuffmanCodeLength)
      throw Error(strfmt("Huffman code length %d of symbol %zu exceeds %d", int(lengths[s]), s, kMaxHuffmanCodeLength));
    ++c.count_[lengths[s]];
    c.max_len_ = std::max(c.max_len_, int(lengths[s]));
  }
  c.count_[0] = 0;
  // Kraft inequality, scaled by 2^30: sum 2^(30 - len) <= 2^30.
  uint64_t kraft = 0;
  for (int len = 1; len <= kMaxHuffmanCodeLength; ++len) kraft += uint64_t(c.count_[len]) << (kMaxHuffmanCodeLength - len);
  if (kraft > (uint64_t(1) << kMaxHuffmanCodeLength))
    throw Error("Huffman code is over-subscribed (Kraft sum > 1): corrupt table");

  // Canonical codes (DEFLATE): next_code per length, symbols in increasing order within a length.
  std::vector<uint32_t> next(kMaxHuffmanCodeLength + 1, 0), offset(kMaxHuffmanCodeLength + 2, 0);
  uint32_t code = 0;
  for (int len = 1; len <= kMaxHuffmanCodeLength; ++len) {
    code = (code + c.count_[len - 1]) << 1;
    next[len] = code;
    offset[len + 1] = offset[len] + c.count_[len];
  }
  c.codes_.assign(lengths.size(), 0);
  c.sorted_.assign(offset[kMaxHuffmanCodeLength + 1], 0);
  for (size_t s = 0; s < lengths.size(); ++s) {
    const int len = lengths[s];
    if (len == 0) continue;
    c.codes_[s] = reverse_bits(next[len]++, len);
    c.sorted_[offset[len]++] = uint32_t(s);
  }
  c.lengths_ = std::move(lengths);
  return c;
}

void HuffmanCode::write_table(BitWriter& w) const {
  const size_t n = lengths_.size();
  for (size_t s = 0; s < n;) {
    if (lengths_[s] != 0) {
      w.put(lengths_[s], 5);
      ++s;
      continue;
    }
    size_t run = 1;
    while (s + run < n && lengths_[s + run] == 0 && run < kLongRunMax) ++run;
    if (run > 2 * kShortRunMax) {
      w.put(kLongRunField, 5);
      w.put(run - 1, 16);
    } else {
      run = std::min(run, kShortRunMax);
      w.put(kShortRunField, 5);
      w.put(run - 1, 3);
    }
    s += run;
  }
}

HuffmanCode HuffmanCode::read_table(BitReader& r, size_t alphabet_size) {
  check_alphabet(alphabet_size);
  std::vector<uint8_t> lengths(alphabet_size, 0);
  for (size_t s = 0; s < alphabet_size;) {
    const uint32_t field = r.get(5);
    if (field != kShortRunField && field != kLongRunField) {
      lengths[s++] = uint8_t(field);
      continue;
    }
    const size_t run = size_t(field == kShortRunField ? r.get(3) : r.get(16)) + 1;
    if (run > alphabet_size - s)
      throw Error(strfmt("Huffman table: run of %zu unused symbols at %zu overruns the alphabet of %zu", run, s,
                         alphabet_size));
    s += run;
  }
  return from_lengths(std::move(lengths));
}

void HuffmanCode::encode(const uint32_t* symbols, size_t n, BitWriter& w) const {
  for (size_t i = 0; i < n; ++i) {
    const uint32_t s = symbols[i];
    if (s >= lengths_.size() || lengths_[s] == 0)
      throw Error(strfmt("Huffman encode: symbol %u has no code", s));
    w.put(codes_[s], lengths_[s]);
  }
}

void HuffmanCode::decode(BitReader& r, size_t n, uint32_t* out) const {
  if (n > 0 && max_len_ == 0) throw Error("Huffman decode: the code is empty");
  for (size_t i = 0; i < n; ++i) {
    // puff.c: `code` is the bits read so far, `first` the first code of this length and `index`
    // the canonical position of that first code.
    int32_t code = 0, first = 0, index = 0;
    int len = 1;
    for (;; ++len) {
      code |= int32_t(r.get_bit());
      const int32_t count = int32_t(count_[size_t(len)]);
      if (code - count < first) {
        out[i] = sorted_[size_t(index + (code - first))];
        break;
      }
      if (len == max_len_) throw Error("Huffman decode: invalid code (corrupt data)");
      index += count;
      first = (first + count) << 1;
      code <<= 1;
    }
  }
}

uint64_t HuffmanCode::encoded_bits(const std::vector<uint64_t>& freq) const {
  uint64_t bits = 0;
  for (size_t s = 0; s < freq.size(); ++s) {
    if (freq[s] == 0) continue;
    if (s >= lengths_.size() || lengths_[s] == 0)
      throw Error(strfmt("Huffman encoded_bits: symbol %zu has a count but no code", s));
    bits += freq[s] * lengths_[s];
  }
  return bits;
}

std::vector<uint8_t> huffman_pack(const std::vector<uint32_t>& symbols, size_t alphabet_size) {
  check_alphabet(alphabet_size);
  std::vector<uint64_t> freq(alphabet_size, 0);
  for (uint32_t s : symbols) {
    if (s >= alphabet_size) throw Error(strfmt("huffman_pack: symbol %u outside the alphabet of %zu", s, alphabet_size));
    ++freq[s];
  }
  HuffmanCode code = HuffmanCode::from_frequencies(freq);
  BitWriter w;
  code.write_table(w);
  code.encode(symbols.data(), symbols.size(), w);
  return w.finish();
}

std::vector<uint32_t> huffman_unpack(const uint8_t* data, size_t size, size_t alphabet_size, size_t count) {
  BitReader r(data, size);
  HuffmanCode code = HuffmanCode::read_table(r, alphabet_size);
  // Every code is >= 1 bit: reject impossible counts before allocating.
  if (count > r.bits_left())
    throw Error(strfmt("huffman_unpack: %zu symbols cannot fit in %zu bits (truncated)", count, r.bits_left()));
  std::vector<uint32_t> out(count);
  code.decode(r, count, out.data());
  const size_t rest = r.bits_left();
  if (rest >= 8 || r.get(int(rest)) != 0)
    throw Error(strfmt("huffman_unpack: %zu unexpected trailing bits", rest));
  return out;
}

}  // namespace dsg::compress
