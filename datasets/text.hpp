// TEXT dataset (data_param.backend TEXT): character-level sequences from plain text, for
// language models (Embed -> LSTM -> InnerProduct -> SoftmaxWithLoss over axis 2).
//
// Source: a text file, or a directory whose regular files are concatenated in name order;
// symbolic links and binary files (any file holding a NUL byte, such as fortune's .dat indexes)
// in a directory are skipped. Gzipped files are inflated.
// Vocabulary: the sorted set of distinct bytes of the whole text (both splits, so indices agree
// between TRAIN and TEST); symbol v stands for byte vocabulary()[v]. It depends only on the text.
// Splits: TRAIN reads the first floor(L * (1 - validation_fraction)) bytes of the L-byte text,
// TEST the rest. Sample i of a split is the window of T + 1 symbols starting at split offset i T
// (T = sequence_length), so size() = (split length - 1) / T windows make an epoch. The Data layer
// turns N windows into the time-major tops data [T, N] (symbols 0..T-1 of each window), label
// [T, N] (symbols 1..T: the next character) and cont [T, N] (0 at t = 0, 1 after).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/source.hpp"

namespace dsg {

// The text of a TEXT source and its vocabulary.
struct TextCorpus {
  std::vector<uint8_t> bytes;       // the whole text, files concatenated
  std::vector<uint8_t> vocabulary;  // sorted distinct bytes of `bytes`
  std::array<int, 256> symbol{};    // byte -> index in vocabulary, -1 when absent
  std::string description;          // "<source> (<k> files ...)"
};

// Reads `source` (a file or a directory, see above). Throws dsg::Error naming the path for a
// missing source (with a hint to install Debian's fortunes for /usr/share/games/fortunes), a file
// that is binary, or a source without text.
TextCorpus read_text_corpus(const std::string& source);

class TextDataSource : public DataSource {
 public:
  // Throws dsg::Error when sequence_length is 0, validation_fraction is outside [0, 1), or the
  // phase's split is shorter than sequence_length + 1 bytes.
  TextDataSource(TextCorpus corpus, int sequence_length, double validation_fraction, Phase phase);

  int64_t size() const override { return windows_; }
  std::vector<int> sample_shape() const override { return {1, 1, seq_len_ + 1}; }
  int num_classes() const override { return vocabulary_size(); }
  // The T + 1 symbols of window i.
  const uint8_t* pixels(int64_t i) const override { return symbols_.data() + begin_ + i * seq_len_; }
  // The symbol that follows the window's last input (its last target).
  int label(int64_t i) const override { return pixels(i)[seq_len_]; }
  int sequence_length() const override { return seq_len_; }
  std::string description() const override { return description_; }

  int vocabulary_size() const { return int(corpus_.vocabulary.size()); }
  const std::vector<uint8_t>& vocabulary() const { return corpus_.vocabulary; }
  // This phase's part of the text: [split_begin(), split_end()) of the whole text.
  int64_t split_begin() const { return begin_; }
  int64_t split_end() const { return end_; }

 private:
  TextCorpus corpus_;
  std::vector<uint8_t> symbols_;  // the whole text as vocabulary indices
  int seq_len_ = 0;
  int64_t begin_ = 0, end_ = 0, windows_ = 0;
  std::string description_;
};

}  // namespace dsg
