// TEXT reader: character-level windows over plain text (see datasets/text.hpp).
#include "datasets/text.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "runtime/error.hpp"

namespace dsg {
namespace {

namespace fs = std::filesystem;

constexpr const char* kFortunesDir = "/usr/share/games/fortunes";

std::string missing_hint(const std::string& path) {
  const std::string base = fs::path(kFortunesDir).lexically_normal().string();
  const std::string p = fs::path(path).lexically_normal().string();
  if (p.compare(0, base.size(), base) == 0)
    return "install Debian's fortunes (apt-get install fortunes) or point --data at a text file or a directory "
           "of text files";
  return "set data_param.source (or --data) to a text file or a directory of text files";
}

// Offset of the first NUL byte, or -1 (a NUL marks a binary file).
int64_t first_nul(const std::vector<uint8_t>& bytes) {
  const void* p = bytes.empty() ? nullptr : std::memchr(bytes.data(), 0, bytes.size());
  return p ? static_cast<const uint8_t*>(p) - bytes.data() : -1;
}

std::unique_ptr<DataSource> create_text(const DataParameter& param, const std::string& source, Phase phase) {
  return std::make_unique<TextDataSource>(read_text_corpus(source), int(param.sequence_length()),
                                          double(param.validation_fraction()), phase);
}

}  // namespace

TextCorpus read_text_corpus(const std::string& source) {
  TextCorpus c;
  std::error_code ec;
  if (!fs::exists(source, ec)) throw Error("TEXT source not found: '" + source + "'", missing_hint(source));
  if (fs::is_directory(source, ec)) {
    std::vector<fs::path> files;
    int symlinks = 0, binary = 0;
    for (const auto& entry : fs::directory_iterator(source, ec)) {
      const fs::file_status st = entry.symlink_status(ec);
      if (fs::is_symlink(st)) ++symlinks;
      else if (fs::is_regular_file(st)) files.push_back(entry.path());
    }
    if (ec) throw Error("cannot list directory '" + source + "': " + ec.message());
    std::sort(files.begin(), files.end(),
              [](const fs::path& a, const fs::path& b) { return a.filename().string() < b.filename().string(); });
    int used = 0;
    for (const auto& f : files) {
      std::vector<uint8_t> bytes = dataset_io::read_file(f.string(), missing_hint(source));
      if (first_nul(bytes) >= 0) {
        ++binary;
        continue;
      }
      c.bytes.insert(c.bytes.end(), bytes.begin(), bytes.end());
      ++used;
    }
    if (used == 0)
      throw Error(strfmt("TEXT source directory '%s' holds no plain-text files (%d binary files and %d symbolic "
                         "links skipped)",
                         source.c_str(), binary, symlinks),
                  missing_hint(source));
    c.description = strfmt("'%s' (%d text files in name order; skipped %d binary files, %d symbolic links)",
                           source.c_str(), used, binary, symlinks);
  } else {
    c.bytes = dataset_io::read_file(source, missing_hint(source));
    const int64_t nul = first_nul(c.bytes);
    if (nul >= 0)
      throw Error(strfmt("TEXT source '%s' is not plain text (NUL byte at offset %lld)", source.c_str(),
                         (long long)nul),
                  "give a text file, or a directory (binary files in it are skipped)");
    c.description = "'" + source + "'";
  }
  if (c.bytes.empty()) throw Error("TEXT source '" + source + "' holds no text (0 bytes)", missing_hint(source));

  bool present[256] = {};
  for (uint8_t b : c.bytes) present[b] = true;
  c.symbol.fill(-1);
  for (int b = 0; b < 256; ++b) {
    if (!present[b]) continue;
    c.symbol[size_t(b)] = int(c.vocabulary.size());
    c.vocabulary.push_back(uint8_t(b));
  }
  return c;
}

TextDataSource::TextDataSource(TextCorpus corpus, int sequence_length, double validation_fraction, Phase phase)
    : corpus_(std::move(corpus)), seq_len_(sequence_length) {
  if (seq_len_ <= 0) throw Error("TEXT: data_param.sequence_length must be positive", "e.g. sequence_length: 64");
  if (!(validation_fraction >= 0.0 && validation_fraction < 1.0))
    throw Error(strfmt("TEXT: data_param.validation_fraction %g is outside [0, 1)", validation_fraction),
                "e.g. validation_fraction: 0.05");
  const int64_t total = int64_t(corpus_.bytes.size());
  // The fraction arrives as a float (0.1f is 0.100000001): round it to 6 decimals so that, e.g.,
  // 10% of 400 bytes is 40, and keep products within 1e-6 of an integer on that integer.
  const double f = std::round(validation_fraction * 1e6) / 1e6;
  const int64_t split = int64_t(std::floor(double(total) * (1.0 - f) + 1e-6));
  begin_ = phase == TRAIN ? 0 : split;
  end_ = phase == TRAIN ? split : total;
  const char* name = phase == TRAIN ? "TRAIN" : "TEST";
  if (end_ - begin_ < int64_t(seq_len_) + 1)
    throw Error(strfmt("TEXT source %s: the %s part holds %lld of its %lld bytes, fewer than sequence_length + 1 = %d",
                       corpus_.description.c_str(), name, (long long)(end_ - begin_), (long long)total, seq_len_ + 1),
                phase == TRAIN ? "use a longer text or lower sequence_length"
                               : "raise data_param.validation_fraction, use a longer text or lower sequence_length");
  windows_ = (end_ - begin_ - 1) / seq_len_;

  symbols_.resize(corpus_.bytes.size());
  for (size_t i = 0; i < symbols_.size(); ++i) symbols_[i] = uint8_t(corpus_.symbol[corpus_.bytes[i]]);
  description_ = strfmt("TEXT %s: %lld bytes, vocabulary of %d symbols; %s part: bytes [%lld, %lld) = %lld windows "
                        "of %d + 1",
                        corpus_.description.c_str(), (long long)total, vocabulary_size(), name, (long long)begin_,
                        (long long)end_, (long long)windows_, seq_len_);
}

DSG_REGISTER_DATASET("TEXT", text, create_text);

}  // namespace dsg
