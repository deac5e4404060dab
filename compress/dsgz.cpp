#include "compress/dsgz.hpp"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <map>

#include "compress/bitstream.hpp"
#include "compress/byte_io.hpp"
#include "compress/huffman.hpp"
#include "compress/relative_index.hpp"
#include "runtime/error.hpp"

namespace dsg::compress {
namespace {

constexpr uint8_t kMagic[8] = {'D', 'S', 'G', 'Z', '\r', '\n', 0x1a, '\n'};
constexpr uint32_t kTagNet = 0x2054454e;   // "NET "
constexpr uint32_t kTagBlob = 0x424f4c42;  // "BLOB"
constexpr int64_t kMaxBlobCount = int64_t(1) << 28;
constexpr uint64_t kMaxNetBytes = uint64_t(64) << 20;
constexpr int kMaxIndexBits = 16;

uint32_t crc(const uint8_t* p, size_t n) {
  uLong c = crc32(0L, Z_NULL, 0);
  // zlib's crc32 takes uInt lengths; feed large buffers in pieces.
  while (n > 0) {
    uInt piece = uInt(std::min<size_t>(n, 1u << 30));
    c = crc32(c, p, piece);
    p += piece, n -= piece;
  }
  return uint32_t(c);
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, 4) == 0; }

// ---- encoding -------------------------------------------------------------------------------

// A relative-indexed block layout of `count` values: which blocks are stored (entries) and their z.
struct Layout {
  int64_t block = 1;
  int index_bits = 1;
  RelativeEntries rel;                 // over blocks; v = 1 for a non-zero block, 0 for a filler
  std::vector<int64_t> entry_block;    // block index of each entry
};

Layout make_layout(const std::vector<bool>& nonzero, int64_t block, int index_bits) {
  Layout l;
  l.block = block;
  l.index_bits = index_bits;
  const int64_t blocks = int64_t(nonzero.size()) / block;
  std::vector<uint32_t> flags(size_t(blocks), 0);
  for (int64_t b = 0; b < blocks; ++b)
    for (int64_t j = 0; j < block && !flags[size_t(b)]; ++j) flags[size_t(b)] = nonzero[size_t(b * block + j)];
  l.rel = encode_relative(flags, index_bits);
  int64_t pos = -1;
  for (uint32_t z : l.rel.z) l.entry_block.push_back(pos += int64_t(z) + 1);
  return l;
}

int log2_exact(size_t alphabet) {
  int b = 0;
  while ((size_t(1) << b) < alphabet) ++b;
  return b;
}

// Bits of a coded symbol stream (mode byte included): Huffman with its table, or fixed-width
// codes when those are smaller (tiny streams over large alphabets).
uint64_t stream_bits(const std::vector<uint32_t>& symbols, size_t alphabet) {
  std::vector<uint64_t> freq(alphabet, 0);
  for (uint32_t s : symbols) ++freq[s];
  HuffmanCode code = HuffmanCode::from_frequencies(freq);
  BitWriter table;
  code.write_table(table);
  const uint64_t huffman = table.bit_count() + code.encoded_bits(freq);
  const uint64_t fixed = uint64_t(symbols.size()) * uint64_t(log2_exact(alphabet));
  return 8 + std::min(huffman, fixed);
}

// A symbol stream: u8 mode (0 Huffman: table + codes; 1 fixed width: log2(alphabet) bits each,
// LSB first), then the bits; whichever is smaller.
std::vector<uint8_t> pack_stream(const std::vector<uint32_t>& symbols, size_t alphabet) {
  std::vector<uint8_t> huffman = huffman_pack(symbols, alphabet);
  BitWriter fixed;
  const int width = log2_exact(alphabet);
  for (uint32_t s : symbols) fixed.put(s, width);
  std::vector<uint8_t> plain = fixed.finish();
  std::vector<uint8_t> out;
  out.push_back(plain.size() < huffman.size() ? 1 : 0);
  const auto& body = plain.size() < huffman.size() ? plain : huffman;
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

// Values of a layout's entries (g per entry; fillers contribute zeros / code 0).
template <class T>
std::vector<T> gather(const Layout& l, const std::vector<T>& dense) {
  std::vector<T> out;
  out.reserve(l.entry_block.size() * size_t(l.block));
  for (int64_t b : l.entry_block)
    for (int64_t j = 0; j < l.block; ++j) out.push_back(dense[size_t(b * l.block + j)]);
  return out;
}

// Candidate block sizes: single values, and for a [M, C, R, S] convolution weight a kernel row (S),
// a kernel (R*S) and a filter (C*R*S); for a [N, K] matrix a row (K).
std::vector<int64_t> block_candidates(const std::vector<int64_t>& shape, bool try_blocks) {
  std::vector<int64_t> out = {1};
  if (!try_blocks || shape.size() < 2) return out;
  int64_t inner = 1;
  for (size_t d = shape.size() - 1; d >= 1; --d) {
    inner *= shape[d];
    if (inner > 1 && std::find(out.begin(), out.end(), inner) == out.end()) out.push_back(inner);
  }
  return out;
}

struct Choice {
  Layout layout;
  uint64_t bits = std::numeric_limits<uint64_t>::max();
};

// Picks the block size and index width minimising index bits + value bits (value_bits(layout)).
template <class ValueBits>
Choice choose_layout(const std::vector<bool>& nonzero, const std::vector<int64_t>& shape, const CompressOptions& opt,
                     ValueBits value_bits) {
  Choice best;
  for (int64_t g : block_candidates(shape, opt.try_blocks)) {
    if (int64_t(nonzero.size()) % g != 0) continue;
    for (int b = opt.index_bits ? opt.index_bits : 1; b <= (opt.index_bits ? opt.index_bits : 12); ++b) {
      Layout l = make_layout(nonzero, g, b);
      uint64_t bits = stream_bits(l.rel.z, size_t(1) << b) + value_bits(l);
      if (bits < best.bits) best.layout = std::move(l), best.bits = bits;
    }
  }
  return best;
}

void put_shape(ByteWriter& w, BlobKind kind, const std::vector<int64_t>& shape) {
  w.put<uint8_t>(uint8_t(kind));
  w.put<uint8_t>(uint8_t(shape.size()));
  for (int64_t d : shape) w.put<int64_t>(d);
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

void fill_layout_stats(BlobStats& s, const Layout& l, size_t z_bytes) {
  s.block = l.block;
  s.index_bits = l.index_bits;
  s.entries = int64_t(l.rel.z.size());
  s.fillers = int64_t(std::count(l.rel.v.begin(), l.rel.v.end(), 0u));
  s.index_bits_huffman = s.entries ? 8.0 * double(z_bytes) / double(s.entries) : 0.0;
}

std::vector<uint8_t> encode_blob(const ParamBlob& pb, bool is_weight, const QuantizerState* q, const CompressOptions& opt,
                                 BlobStats& s) {
  const BlobProto& blob = pb.blob();
  std::vector<int64_t> shape(blob.shape().dim().begin(), blob.shape().dim().end());
  const int64_t count = blob.data_size();
  const float* v = blob.data().data();
  s.layer = pb.layer();
  s.index = pb.index();
  s.params = count;
  for (int64_t i = 0; i < count; ++i) s.nonzeros += v[i] != 0.0f;
  std::vector<bool> nonzero(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) nonzero[size_t(i)] = v[i] != 0.0f;
  ByteWriter w;

  if (q && pb.index() == 0 && q->active()) {
    if (int64_t(q->codes().size()) != count)
      throw Error("layer '" + pb.layer() + "': its quantizer state does not match the weight blob");
    const auto* code_bytes = reinterpret_cast<const uint8_t*>(q->codes().data());
    std::vector<uint32_t> codes(code_bytes, code_bytes + q->codes().size());
    for (int64_t i = 0; i < count; ++i)
      if (codes[size_t(i)] >= uint32_t(q->codebook_size()) || !same_bits(q->codebook(int(codes[size_t(i)])), v[i]))
        throw Error("layer '" + pb.layer() +
                    strfmt("': weight %lld (%.9g) is not the codebook value of its code %u; the snapshot's "
                           "quantizer state does not match its weights",
                           static_cast<long long>(i), v[i], codes[size_t(i)]));
    if (q->method() == QuantizationParameter::TTQ) {
      s.kind = BlobKind::TERNARY;
      s.weight_bits = 2;
      s.weight_bits_huffman = 2;
      put_shape(w, s.kind, shape);
      w.put_f32(q->codebook(1));
      w.put_f32(-q->codebook(2));
      std::vector<uint8_t> packed(size_t(ceil_div(count, 4)), 0);
      for (int64_t i = 0; i < count; ++i) packed[size_t(i / 4)] |= uint8_t(codes[size_t(i)] << (2 * (i % 4)));
      w.put_bytes(packed);
      s.bytes_fixed = int64_t(w.size());
      s.bytes = int64_t(w.size());
      return std::move(w.bytes());
    }
    // k-means: codebook of 2^bits values, code 0 = zero.
    const int bw = int(q->bits());
    const size_t alphabet = size_t(1) << bw;
    if (size_t(q->codebook_size()) != alphabet || q->codebook(0) != 0.0f)
      throw Error("layer '" + pb.layer() + "': its codebook should hold 2^bits values starting with 0");
    std::vector<bool> nz(static_cast<size_t>(count));
    for (int64_t i = 0; i < count; ++i) nz[size_t(i)] = codes[size_t(i)] != 0;
    Choice c = choose_layout(nz, shape, opt, [&](const Layout& l) { return stream_bits(gather(l, codes), alphabet); });
    std::vector<uint8_t> zs = pack_stream(c.layout.rel.z, size_t(1) << c.layout.index_bits);
    std::vector<uint32_t> stored = gather(c.layout, codes);
    std::vector<uint8_t> cs = pack_stream(stored, alphabet);
    s.kind = BlobKind::CODEBOOK;
    put_shape(w, s.kind, shape);
    w.put<uint8_t>(uint8_t(bw));
    w.put<uint8_t>(uint8_t(c.layout.index_bits));
    w.put<uint32_t>(uint32_t(c.layout.block));
    for (size_t k = 0; k < alphabet; ++k) w.put_f32(q->codebook(int(k)));
    w.put<uint64_t>(c.layout.rel.z.size());
    w.put_block(zs);
    w.put_block(cs);
    fill_layout_stats(s, c.layout, zs.size());
    s.weight_bits = bw;
    s.weight_bits_huffman = stored.empty() ? 0.0 : 8.0 * double(cs.size()) / double(stored.size());
    const size_t head = w.size() - zs.size() - cs.size();
    s.bytes_fixed = int64_t(head) + ceil_div(int64_t(stored.size()) * bw, 8) + ceil_div(s.entries * s.index_bits, 8);
    s.bytes = int64_t(w.size());
    return std::move(w.bytes());
  }

  if (is_weight && count > 0 && s.nonzeros * 2 < count) {
    std::vector<float> dense(v, v + count);
    Choice c = choose_layout(nonzero, shape, opt, [&](const Layout& l) { return uint64_t(l.entry_block.size() * l.block * 32); });
    if (c.bits / 8 + 64 < uint64_t(count) * 4) {
      std::vector<uint8_t> zs = pack_stream(c.layout.rel.z, size_t(1) << c.layout.index_bits);
      std::vector<float> stored = gather(c.layout, dense);
      s.kind = BlobKind::SPARSE_F32;
      put_shape(w, s.kind, shape);
      w.put<uint8_t>(uint8_t(c.layout.index_bits));
      w.put<uint32_t>(uint32_t(c.layout.block));
      w.put<uint64_t>(c.layout.rel.z.size());
      w.put_block(zs);
      for (float x : stored) w.put_f32(x);
      fill_layout_stats(s, c.layout, zs.size());
      s.weight_bits = 32;
      s.weight_bits_huffman = 32;
      s.bytes_fixed = int64_t(w.size() - zs.size()) + ceil_div(s.entries * s.index_bits, 8);
      s.bytes = int64_t(w.size());
      return std::move(w.bytes());
    }
  }
  s.kind = BlobKind::RAW;
  put_shape(w, s.kind, shape);
  for (int64_t i = 0; i < count; ++i) w.put_f32(v[i]);
  s.bytes_fixed = s.bytes = int64_t(w.size());
  return std::move(w.bytes());
}

void put_section(ByteWriter& w, uint32_t tag, const std::string& name, const std::vector<uint8_t>& payload) {
  w.put<uint32_t>(tag);
  w.put<uint32_t>(uint32_t(name.size()));
  w.put_bytes(reinterpret_cast<const uint8_t*>(name.data()), name.size());
  w.put<uint64_t>(payload.size());
  w.put<uint32_t>(crc(payload.data(), payload.size()));
  w.put_bytes(payload);
}

// ---- decoding -------------------------------------------------------------------------------

// Reads a u32-length-prefixed symbol stream (see pack_stream) of `count` symbols.
std::vector<uint32_t> get_stream(ByteReader& r, size_t alphabet, uint64_t count, const char* what) {
  uint32_t n = r.get<uint32_t>();
  if (n < 1) throw Error(r.what() + strfmt(": the %s stream is empty", what));
  const uint8_t* p = r.take(n);
  const uint8_t mode = p[0];
  // Every symbol takes at least one bit.
  if (count > uint64_t(n - 1) * 8) throw Error(r.what() + strfmt(": the %s stream is too short for its symbol count", what));
  if (mode == 0) return huffman_unpack(p + 1, n - 1, alphabet, size_t(count));
  if (mode != 1) throw Error(r.what() + strfmt(": the %s stream has an unknown coding %u", what, mode));
  const int width = log2_exact(alphabet);
  if (count * uint64_t(width) > uint64_t(n - 1) * 8)
    throw Error(r.what() + strfmt(": the %s stream is too short for its symbol count", what));
  BitReader bits(p + 1, n - 1);
  std::vector<uint32_t> out(static_cast<size_t>(count));
  for (auto& v : out) {
    v = bits.get(width);
    if (v >= alphabet) throw Error(r.what() + strfmt(": a %s symbol is out of range", what));
  }
  return out;
}

// Checks that entries of relative indices `z` stay inside `blocks` positions.
void check_entries(const ByteReader& r, const std::vector<uint32_t>& z, int64_t blocks) {
  int64_t pos = -1;
  for (uint32_t d : z) {
    pos += int64_t(d) + 1;
    if (pos >= blocks) throw Error(r.what() + ": a relative index points past the end of the blob");
  }
}

CompressedBlob parse_blob(const std::string& name, const uint8_t* data, size_t size) {
  ByteReader r(data, size, "blob '" + name + "'");
  CompressedBlob b;
  size_t slash = name.rfind('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 >= name.size())
    throw Error("blob section name '" + name + "' is not layer/index");
  b.layer = name.substr(0, slash);
  const std::string idx = name.substr(slash + 1);
  if (idx.size() > 4 || idx.find_first_not_of("0123456789") != std::string::npos)
    throw Error("blob section name '" + name + "' has a bad index");
  b.index = std::stoi(idx);
  uint8_t kind = r.get<uint8_t>();
  if (kind > uint8_t(BlobKind::SPARSE_F32)) throw Error(r.what() + strfmt(": unknown encoding %u", kind));
  b.kind = BlobKind(kind);
  uint8_t nd = r.get<uint8_t>();
  if (nd > 8) throw Error(r.what() + strfmt(": %u dimensions", nd));
  int64_t count = 1;
  for (int i = 0; i < nd; ++i) {
    int64_t d = r.get<int64_t>();
    if (d < 0 || d > kMaxBlobCount || (d > 0 && count > kMaxBlobCount / d))
      throw Error(r.what() + ": its shape is invalid or too large");
    b.shape.push_back(d);
    count *= d;
  }
  switch (b.kind) {
    case BlobKind::RAW:
      r.need(uint64_t(count) * 4);
      b.values.resize(size_t(count));
      for (auto& x : b.values) x = r.get_f32();
      break;
    case BlobKind::TERNARY: {
      b.weight_bits = 2;
      float wp = r.get_f32(), wn = r.get_f32();
      b.codebook = {0.0f, wp, -wn};
      const uint8_t* p = r.take(uint64_t(ceil_div(count, 4)));
      b.codes.resize(size_t(count));
      for (int64_t i = 0; i < count; ++i) {
        uint32_t c = (p[i / 4] >> (2 * (i % 4))) & 3u;
        if (c == 3) throw Error(r.what() + ": invalid ternary code 3");
        b.codes[size_t(i)] = c;
      }
      break;
    }
    case BlobKind::CODEBOOK:
    case BlobKind::SPARSE_F32: {
      const bool cb = b.kind == BlobKind::CODEBOOK;
      if (cb) {
        b.weight_bits = r.get<uint8_t>();
        if (b.weight_bits < 1 || b.weight_bits > 8) throw Error(r.what() + strfmt(": weight bits %d", b.weight_bits));
      }
      b.index_bits = r.get<uint8_t>();
      if (b.index_bits < 1 || b.index_bits > kMaxIndexBits) throw Error(r.what() + strfmt(": index bits %d", b.index_bits));
      b.block = r.get<uint32_t>();
      if (b.block < 1 || (count > 0 && count % b.block != 0) || (count == 0 && b.block != 1))
        throw Error(r.what() + ": its block size does not divide the blob");
      if (cb) {
        b.codebook.resize(size_t(1) << b.weight_bits);
        for (auto& x : b.codebook) x = r.get_f32();
        if (b.codebook[0] != 0.0f) throw Error(r.what() + ": codebook entry 0 must be the zero weight");
      }
      uint64_t entries = r.get<uint64_t>();
      const int64_t blocks = count / b.block;
      if (entries > uint64_t(blocks)) throw Error(r.what() + ": more entries than blocks");
      b.z = get_stream(r, size_t(1) << b.index_bits, entries, "index");
      check_entries(r, b.z, blocks);
      const uint64_t stored = entries * uint64_t(b.block);
      if (cb) {
        b.codes = get_stream(r, b.codebook.size(), stored, "code");
      } else {
        r.need(stored * 4);
        b.values.resize(size_t(stored));
        for (auto& x : b.values) x = r.get_f32();
      }
      break;
    }
  }
  if (r.left() != 0) throw Error(r.what() + strfmt(": %zu unexpected bytes after the data", r.left()));
  return b;
}

NetParameter parse_net(const uint8_t* data, size_t size) {
  ByteReader r(data, size, "the NET section");
  uint64_t raw = r.get<uint64_t>();
  if (raw > kMaxNetBytes) throw Error("the NET section claims an implausible size");
  std::vector<uint8_t> out(static_cast<size_t>(raw));
  uLongf out_len = uLongf(raw);
  int rc = uncompress(out.data(), &out_len, data + 8, uLong(size - 8));
  if (rc != Z_OK || out_len != raw) throw Error("the NET section does not inflate (corrupt compressed data)");
  NetParameter net;
  if (!net.ParseFromArray(out.data(), int(out.size()))) throw Error("the NET section is not a valid network description");
  return net;
}

}  // namespace

const char* blob_kind_name(BlobKind kind) {
  switch (kind) {
    case BlobKind::RAW: return "raw";
    case BlobKind::CODEBOOK: return "codebook";
    case BlobKind::TERNARY: return "ternary";
    case BlobKind::SPARSE_F32: return "sparse-f32";
  }
  return "?";
}

int64_t CompressedBlob::count() const {
  int64_t c = 1;
  for (int64_t d : shape) c *= d;
  return c;
}

CompressResult compress_model(const ModelFile& model, const WeightBlobMap& weights, const CompressOptions& options) {
  if (options.index_bits < 0 || options.index_bits > 12) throw Error("index bits must be 1..12 (or 0 = automatic)");
  auto is_weight = [&](const ParamBlob& pb) {
    auto it = weights.find(pb.layer());
    return it != weights.end() && std::find(it->second.begin(), it->second.end(), pb.index()) != it->second.end();
  };
  std::map<std::string, const QuantizerState*> quantizers;
  for (const auto& q : model.quantizer()) quantizers[q.layer()] = &q;

  CompressResult result;
  ByteWriter w;
  w.put_bytes(kMagic, 8);
  w.put<uint16_t>(kDsgzMajor);
  w.put<uint16_t>(kDsgzMinor);
  w.put<uint32_t>(uint32_t(1 + model.param_size()));
  w.put<uint32_t>(crc(w.bytes().data(), w.size()));

  std::string net = model.net().SerializeAsString();
  uLongf packed_len = compressBound(uLong(net.size()));
  std::vector<uint8_t> packed(packed_len);
  if (compress2(packed.data(), &packed_len, reinterpret_cast<const Bytef*>(net.data()), uLong(net.size()), 9) != Z_OK)
    throw Error("zlib failed to compress the network description");
  ByteWriter np;
  np.put<uint64_t>(net.size());
  np.put_bytes(packed.data(), packed_len);
  put_section(w, kTagNet, "net", np.bytes());
  result.net_bytes = int64_t(np.size());

  for (const auto& pb : model.param()) {
    auto q = quantizers.find(pb.layer());
    BlobStats s;
    std::vector<uint8_t> payload =
        encode_blob(pb, is_weight(pb), q == quantizers.end() ? nullptr : q->second, options, s);
    put_section(w, kTagBlob, pb.layer() + "/" + std::to_string(pb.index()), payload);
    result.stats.push_back(s);
  }
  w.put<uint32_t>(crc(w.bytes().data(), w.size()));
  result.bytes = std::move(w.bytes());
  return result;
}

DsgzModel read_dsgz(const uint8_t* data, size_t size, bool verify_checksums) {
  if (size < 24 || std::memcmp(data, kMagic, 8) != 0) throw Error("not a .dsgz file (bad magic)");
  ByteReader r(data, size - 4, "the .dsgz file");
  r.take(8);
  DsgzModel m;
  m.major = r.get<uint16_t>();
  m.minor = r.get<uint16_t>();
  uint32_t sections = r.get<uint32_t>();
  uint32_t header_crc = r.get<uint32_t>();
  if (verify_checksums && header_crc != crc(data, 16)) throw Error("the .dsgz header checksum does not match (corrupt file)");
  if (m.major != kDsgzMajor)
    throw Error(strfmt("the .dsgz file has format version %u.%u; this dsg reads version %u.x", m.major, m.minor, kDsgzMajor),
                "use the dsgcompress that wrote it, or re-export the model");
  ByteReader tail(data + size - 4, 4, "the .dsgz trailer");
  if (verify_checksums && tail.get<uint32_t>() != crc(data, size - 4))
    throw Error("the .dsgz file checksum does not match: the file is corrupt or truncated");
  if (sections > 1000000) throw Error("the .dsgz file claims an implausible number of sections");
  bool have_net = false;
  for (uint32_t i = 0; i < sections; ++i) {
    uint32_t tag = r.get<uint32_t>();
    uint32_t name_len = r.get<uint32_t>();
    if (name_len > 4096) throw Error(strfmt("section %u has an implausible name length", i));
    const uint8_t* name_p = r.take(name_len);
    std::string name(reinterpret_cast<const char*>(name_p), name_len);
    uint64_t len = r.get<uint64_t>();
    uint32_t payload_crc = r.get<uint32_t>();
    const uint8_t* payload = r.take(len);
    if (verify_checksums && payload_crc != crc(payload, size_t(len)))
      throw Error("section '" + name + "' checksum does not match (corrupt file)");
    if (tag == kTagNet) {
      if (have_net) throw Error("the .dsgz file has two NET sections");
      m.net = parse_net(payload, size_t(len));
      have_net = true;
    } else if (tag == kTagBlob) {
      m.blobs.push_back(parse_blob(name, payload, size_t(len)));
    } else {
      throw Error(strfmt("section %u ('%s') has an unknown tag 0x%08x", i, name.c_str(), tag));
    }
  }
  if (r.left() != 0) throw Error(strfmt("%zu unexpected bytes after the last section", r.left()));
  if (!have_net) throw Error("the .dsgz file has no NET section");
  return m;
}

bool looks_like_dsgz(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char head[8] = {};
  in.read(head, 8);
  return in.gcount() == 8 && std::memcmp(head, kMagic, 8) == 0;
}

DsgzModel read_dsgz_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open '" + path + "'");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  try {
    return read_dsgz(bytes.data(), bytes.size());
  } catch (const Error& e) {
    throw Error("'" + path + "': " + e.what(), e.hint());
  }
}

std::vector<float> decode_values(const CompressedBlob& b) {
  const int64_t count = b.count();
  if (b.kind == BlobKind::RAW) return b.values;
  std::vector<float> out(size_t(count), 0.0f);
  if (b.kind == BlobKind::TERNARY) {
    for (int64_t i = 0; i < count; ++i) out[size_t(i)] = b.codebook[b.codes[size_t(i)]];
    return out;
  }
  const bool codebook = b.kind == BlobKind::CODEBOOK;
  for_each_stored(b, [&](int64_t e, size_t k) { out[size_t(e)] = codebook ? b.codebook[b.codes[k]] : b.values[k]; });
  return out;
}

bool same_weight(float model, float decoded) { return same_bits(model, decoded) || (model == 0.0f && decoded == 0.0f); }

std::vector<uint32_t> decode_codes(const CompressedBlob& b) {
  if (b.kind == BlobKind::TERNARY) return b.codes;
  if (b.kind != BlobKind::CODEBOOK) return {};
  std::vector<uint32_t> out(static_cast<size_t>(b.count()), 0u);
  for_each_stored(b, [&](int64_t e, size_t k) { out[size_t(e)] = b.codes[k]; });
  return out;
}

ModelFile decode_model(const DsgzModel& model) {
  ModelFile out;
  *out.mutable_net() = model.net;
  out.set_created_by("dsgz decode");
  for (const auto& b : model.blobs) {
    ParamBlob* pb = out.add_param();
    pb->set_layer(b.layer);
    pb->set_index(b.index);
    for (int64_t d : b.shape) pb->mutable_blob()->mutable_shape()->add_dim(d);
    std::vector<float> v = decode_values(b);
    *pb->mutable_blob()->mutable_data() = {v.begin(), v.end()};
  }
  return out;
}

}  // namespace dsg::compress
