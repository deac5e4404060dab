// The .dsgz compressed model format (Deep Compression storage in a versioned, checksummed
// container) and its in-memory form.
//
// Container (all integers little-endian):
//   "DSGZ\r\n\x1a\n"  magic (8 bytes)
//   u16 major, u16 minor  format version (readers accept their own major version only)
//   u32 section count, u32 CRC-32 of the 16 bytes before it
//   sections: u32 tag ("NET " | "BLOB"), u32 name length, name, u64 payload length,
//             u32 CRC-32 of the payload, payload
//   u32 CRC-32 of every byte before it
// NET payload: u64 size, then the zlib-deflated binary NetParameter.
// BLOB payload (name "layer/index"): u8 kind, u8 ndims, i64 dims[ndims], then by kind:
//   RAW        f32 values[count]
//   CODEBOOK   k-means shared weights: u8 weight bits b_w (codebook of 2^b_w values, entry 0 is
//              the zero weight), u8 index bits b_i, u32 block g, f32 codebook[2^b_w], u64 entries,
//              u32 bytes + stream(relative indices), u32 bytes + stream(codes, g per entry);
//              a stream is u8 coding (0 Huffman table + codes, 1 fixed width) + its bits.
//              The weights are cut into blocks of g consecutive values (row-major; g = 1 is Deep
//              Compression, g = a kernel row / kernel / filter stores one index per block: Mao et
//              al.'s index saving); entries are the non-zero blocks plus filler blocks, each
//              relative-indexed with b_i bits (compress/relative_index.hpp); a filler's g codes are 0.
//   TERNARY    TTQ: f32 W_p, f32 W_n, 2-bit codes (0 zero, 1 +W_p, 2 -W_n) packed 4 per byte, LSB first.
//   SPARSE_F32 an unquantized sparse blob: u8 b_i, u32 g, u64 entries, u32 bytes + stream(relative
//              indices), f32 values[entries * g].
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "dsg.pb.h"

namespace dsg::compress {

constexpr uint16_t kDsgzMajor = 1;
constexpr uint16_t kDsgzMinor = 0;

enum class BlobKind : uint8_t { RAW = 0, CODEBOOK = 1, TERNARY = 2, SPARSE_F32 = 3 };
const char* blob_kind_name(BlobKind kind);

// One parameter blob in its compressed in-memory form (what the EIE-style kernel runs on).
struct CompressedBlob {
  std::string layer;
  int index = 0;
  std::vector<int64_t> shape;
  BlobKind kind = BlobKind::RAW;
  int weight_bits = 32;           // CODEBOOK: b_w; TERNARY: 2
  int index_bits = 0;             // CODEBOOK / SPARSE_F32
  int64_t block = 1;              // g
  std::vector<float> codebook;    // CODEBOOK: 2^b_w values; TERNARY: {0, W_p, -W_n}
  std::vector<uint32_t> z;        // relative block indices, one per entry
  std::vector<uint32_t> codes;    // CODEBOOK: entries * g codes; TERNARY: one code per weight
  std::vector<float> values;      // RAW: count values; SPARSE_F32: entries * g values
  int64_t count() const;
};

// Walks the stored values of a CODEBOOK or SPARSE_F32 blob in order: fn(element, k) for the k-th
// stored value (codes[k] / values[k]), which belongs to weight `element` of the dense blob.
// Fillers and block-internal zeros are visited too (their code / value is 0).
template <class Fn>
void for_each_stored(const CompressedBlob& blob, Fn&& fn) {
  int64_t block = -1;
  size_t k = 0;
  for (uint32_t z : blob.z) {
    block += int64_t(z) + 1;
    for (int64_t j = 0; j < blob.block; ++j, ++k) fn(block * blob.block + j, k);
  }
}

// Per-blob facts for dsgcompress's table.
struct BlobStats {
  std::string layer;
  int index = 0;
  BlobKind kind = BlobKind::RAW;
  int64_t params = 0, nonzeros = 0;
  int64_t entries = 0, fillers = 0, block = 1;
  int weight_bits = 32, index_bits = 0;
  double weight_bits_huffman = 32, index_bits_huffman = 0;  // mean bits per stored code / index
  int64_t bytes_fixed = 0;    // payload with fixed-width codes and indices (before Huffman)
  int64_t bytes = 0;          // payload as written (after Huffman)
};

struct CompressOptions {
  int index_bits = 0;         // 0: per blob, the width giving the smallest payload
  bool try_blocks = true;     // also try one index per kernel row / kernel / filter
};

struct CompressResult {
  std::vector<uint8_t> bytes;
  std::vector<BlobStats> stats;
  int64_t net_bytes = 0;      // the NET section's payload
};

// The blobs stored as weights: layer name -> blob indices (what Layer::weight_blobs() says; see
// compress/weight_blobs.hpp, which asks the layers). Blobs not listed are stored RAW.
using WeightBlobMap = std::map<std::string, std::vector<int>>;

// Compresses a model (a dsgtrain snapshot): blob 0 of k-means layers (ModelFile.quantizer) becomes
// CODEBOOK, of TTQ layers TERNARY; the other blobs listed in `weights` SPARSE_F32 when that is
// smaller; everything else RAW. Throws dsg::Error if a quantized blob does not match its codebook.
// compress/weight_blobs.hpp has the overload that takes `weights` from the model's layers.
CompressResult compress_model(const ModelFile& model, const WeightBlobMap& weights,
                              const CompressOptions& options = {});

struct DsgzModel {
  uint16_t major = 0, minor = 0;
  NetParameter net;
  std::vector<CompressedBlob> blobs;
};

// Parses and validates a .dsgz image. Throws dsg::Error (never crashes) on any malformed, truncated
// or corrupt input. verify_checksums = false skips the CRCs (the fuzzer uses it to reach the parser).
DsgzModel read_dsgz(const uint8_t* data, size_t size, bool verify_checksums = true);
DsgzModel read_dsgz_file(const std::string& path);
// True if the file starts with the .dsgz magic.
bool looks_like_dsgz(const std::string& path);

// The dense values of a blob: bit-identical to the model it was compressed from, except that the
// sparse encodings store zeros by omission, so a -0.0 weight (a masked negative weight) decodes as
// +0.0, the same value (see same_weight).
std::vector<float> decode_values(const CompressedBlob& blob);
// Whether a decoded weight reproduces the model's: the same bits, or both zero (of either sign).
bool same_weight(float model, float decoded);
// Per-weight codes of a CODEBOOK or TERNARY blob (codebook[codes[i]] == value i); empty otherwise.
std::vector<uint32_t> decode_codes(const CompressedBlob& blob);
// A ModelFile (net + parameters) with every blob decoded; no solver state.
ModelFile decode_model(const DsgzModel& model);

}  // namespace dsg::compress
