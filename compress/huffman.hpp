// Canonical, length-limited Huffman coding over an alphabet [0, alphabet_size), alphabet_size
// <= 65536 (the entropy coder of the .dsgz format, as in Deep Compression).
//
// Codes are canonical (DEFLATE order: shorter codes first, ties by symbol) so only the code
// lengths are stored. Code bits are emitted most-significant first into the LSB-first BitWriter,
// exactly as DEFLATE does, and decoded bit by bit (zlib's puff.c scheme).
//
// Table format (write_table/read_table; alphabet_size is known to both sides), one 5-bit field per
// item, in symbol order:
//   1..30  the code length of the next symbol
//   0      a short run of unused symbols: 3 more bits hold run - 1 (run 1..8)
//   31     a long run of unused symbols: 16 more bits hold run - 1 (run 1..65536)
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "compress/bitstream.hpp"

namespace dsg::compress {

constexpr size_t kMaxHuffmanAlphabet = 65536;
constexpr int kMaxHuffmanCodeLength = 30;  // hard limit of the table format
constexpr int kDefaultHuffmanMaxLength = 20;

class HuffmanCode {
 public:
  HuffmanCode() = default;  // empty code over an empty alphabet

  // Optimal prefix code for `freq` (freq.size() is the alphabet size) with every code length
  // <= max_length (1..30), built with package-merge. Unused symbols (freq 0) get no code; a single
  // used symbol gets length 1; no used symbols gives an empty code (encodes only empty streams).
  // Throws dsg::Error if the alphabet is too large or 2^max_length < number of used symbols.
  static HuffmanCode from_frequencies(const std::vector<uint64_t>& freq, int max_length = kDefaultHuffmanMaxLength);
  // Canonical code with the given lengths (0 = unused). Throws dsg::Error unless every length is
  // <= 30 and the Kraft sum is <= 1 (incomplete codes are accepted; their unused bit patterns
  // are rejected when decoding).
  static HuffmanCode from_lengths(std::vector<uint8_t> lengths);

  size_t alphabet_size() const { return lengths_.size(); }
  // Code length per symbol (0 = unused symbol).
  const std::vector<uint8_t>& lengths() const { return lengths_; }
  // Longest code length (0 for an empty code).
  int max_code_length() const { return max_len_; }

  // Serialises the code lengths (see the format above).
  void write_table(BitWriter& w) const;
  // Reads and validates a table written by write_table for the same alphabet_size. Throws
  // dsg::Error on truncation, a zero run past the alphabet, or an over-subscribed code.
  static HuffmanCode read_table(BitReader& r, size_t alphabet_size);

  // Appends the codes of symbols[0..n). Throws dsg::Error if a symbol has no code.
  void encode(const uint32_t* symbols, size_t n, BitWriter& w) const;
  // Decodes n symbols into out[0..n). Throws dsg::Error on an invalid code, truncation, or n > 0
  // with an empty code. Never reads past the reader's buffer.
  void decode(BitReader& r, size_t n, uint32_t* out) const;

  // Sum of freq[s] * length[s]: the encoded size in bits of data with these counts. Throws
  // dsg::Error if a symbol with a non-zero count has no code.
  uint64_t encoded_bits(const std::vector<uint64_t>& freq) const;

 private:
  std::vector<uint8_t> lengths_;
  std::vector<uint32_t> codes_;        // per symbol, bit-reversed so BitWriter emits the MSB first
  std::vector<uint32_t> count_;        // count_[len] = number of symbols with that length
  std::vector<uint32_t> sorted_;       // used symbols in canonical order
  int max_len_ = 0;
};

// Table + codes of `symbols` as bytes (symbol count is NOT stored: pass it to huffman_unpack).
// Throws dsg::Error if a symbol is >= alphabet_size.
std::vector<uint8_t> huffman_pack(const std::vector<uint32_t>& symbols, size_t alphabet_size);
// Inverse of huffman_pack. Throws dsg::Error on any malformed input (bad table, invalid code,
// truncation, or more than 7 trailing bits / non-zero padding after the last code).
std::vector<uint32_t> huffman_unpack(const uint8_t* data, size_t size, size_t alphabet_size, size_t count);

}  // namespace dsg::compress
