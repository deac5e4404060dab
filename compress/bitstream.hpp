// Bit-level writer/reader for the compressed model format (.dsgz).
//
// Bit order: LSB-first. Bits are packed into bytes starting at the least significant bit of the
// first byte (the DEFLATE convention). put(v, n) emits v's bit 0 first, then bit 1, ..., so a
// multi-bit field reads back with get(n) as the same integer. The final byte is zero-padded.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace dsg::compress {

class BitWriter {
 public:
  // Appends the low `nbits` bits of `value` (nbits in 0..32). Throws dsg::Error if nbits is out
  // of range or `value` does not fit in nbits bits.
  void put(uint64_t value, int nbits);
  // Number of bits written so far (excluding padding).
  size_t bit_count() const { return bytes_.size() * 8 + size_t(nacc_); }
  // Returns the bytes, padding the last partial byte with zero bits, and resets the writer.
  std::vector<uint8_t> finish();

 private:
  std::vector<uint8_t> bytes_;
  uint64_t acc_ = 0;  // pending bits, LSB = oldest
  int nacc_ = 0;      // number of pending bits (< 32 between calls)
};

class BitReader {
 public:
  // Reads from [data, data + size_bytes); the buffer must outlive the reader. Never reads
  // outside that range.
  BitReader(const uint8_t* data, size_t size_bytes);

  // Reads `nbits` bits (0..32) written by BitWriter::put. Throws dsg::Error("... truncated ...")
  // if fewer than nbits bits remain (the reader state is then unspecified).
  uint32_t get(int nbits);
  // Reads one bit (hot path of Huffman decoding).
  uint32_t get_bit() {
    if (nbuf_ == 0) refill_or_throw(1);
    uint32_t bit = uint32_t(buf_ & 1u);
    buf_ >>= 1;
    --nbuf_;
    return bit;
  }
  // Bits not yet consumed, including the padding bits of the last byte.
  size_t bits_left() const { return size_t(nbuf_) + 8 * (size_ - pos_); }

 private:
  void refill();
  void refill_or_throw(int nbits);  // refills; throws if fewer than nbits bits are then buffered

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;    // next byte to load into buf_
  uint64_t buf_ = 0;  // buffered bits, LSB = next bit
  int nbuf_ = 0;      // number of buffered bits (0..64)
};

}  // namespace dsg::compress
