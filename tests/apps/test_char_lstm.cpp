// configs/char_lstm.prototxt end to end with the binaries: dsgtrain trains it for a few iterations
// on a small text given with --data (finite losses, a snapshot), and dsgeval --sample generates
// text from the snapshot: N characters of the vocabulary, reproducible for a seed, the same from
// the stored net and from --config; one-line errors for unusable models and configs.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "support/learnable_dataset.hpp"
#include "support/run_tool.hpp"

using dsg::test::last_line;
using dsg::test::TempDir;
using dsg::test::run_tool;
namespace fs = std::filesystem;

namespace {

const std::string kConfig = std::string(DSG_SOURCE_DIR) + "/configs/char_lstm.prototxt";

// A 6 kB text with exactly 114 distinct bytes (the vocabulary size the config is written for):
// printable ASCII, '\n', '\t' and 17 bytes from 0xC0, then repeated phrases.
std::string corpus_text() {
  std::string alphabet;
  for (int b = 32; b < 127; ++b) alphabet.push_back(char(b));
  alphabet += "\n\t";
  for (int b = 0xC0; b < 0xC0 + 17; ++b) alphabet.push_back(char(b));
  std::string text = alphabet + "\n%\n";
  const char* phrases[] = {"the quick brown fox jumps over the lazy dog.\n", "%\n",
                           "A fortune a day keeps the doctor away.\n", "To be or not to be.\n"};
  for (int i = 0; text.size() < 6000; ++i) text += phrases[(i * 7) % 4];
  return text;
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Trains the shipped config for 4 iterations on the text in dir/corpus.txt; returns the snapshot.
std::string train(const TempDir& dir) {
  std::ofstream(dir.file("corpus.txt"), std::ios::binary) << corpus_text();
  auto r = run_tool("dsgtrain", kConfig + " --iterations 4 --threads 1 --seed 2 --data " + dir.file("corpus.txt") +
                                    " --output " + dir.file("out"));
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.output, Catch::Contains("vocabulary of 114 symbols") && Catch::Contains("Test net output"));
  const std::string model = dir.file("out/char_lstm_iter_4.dsgmodel");
  REQUIRE(fs::exists(model));
  // metrics.jsonl: the initial and the final test, every loss finite (dsgtrain writes non-finite
  // values as null; there is no train_loss before the first iteration).
  std::istringstream metrics(read_all(dir.file("out/metrics.jsonl")));
  std::string line;
  int lines = 0;
  while (std::getline(metrics, line)) {
    INFO(line);
    if (line.find("\"kind\": \"train\"") != std::string::npos) continue;  // the display rows
    for (const std::string key : {"\"test_loss\": ", "\"loss\": ", "\"train_loss\": "}) {
      if (lines == 0 && key == "\"train_loss\": ") continue;
      const size_t at = line.find(key);
      REQUIRE(at != std::string::npos);
      const double loss = std::strtod(line.c_str() + at + key.size(), nullptr);  // null reads as 0
      CHECK(std::isfinite(loss));
      CHECK(loss > 0);
      CHECK(loss < 10);
    }
    ++lines;
  }
  CHECK(lines == 2);
  return model;
}

}  // namespace

TEST_CASE("char_lstm trains on a text given with --data and dsgeval --sample generates from it",
          "[apps][text][lstm]") {
  TempDir dir;
  const std::string model = train(dir);
  const std::string text = corpus_text();
  const std::set<char> vocabulary(text.begin(), text.end());

  auto a = run_tool("dsgeval", model + " --threads 1 --sample 60 --seed 5", false);
  INFO(a.output);
  REQUIRE(a.status == 0);
  REQUIRE(a.output.size() == 60);
  for (char c : a.output) CHECK(vocabulary.count(c) == 1);

  // The same seed gives the same text, also from the config with the source given by --data.
  auto b = run_tool("dsgeval", model + " --threads 1 --sample 60 --seed 5 --config " + kConfig + " --data " +
                                   dir.file("corpus.txt"),
                    false);
  REQUIRE(b.status == 0);
  CHECK(b.output == a.output);
  auto c = run_tool("dsgeval", model + " --threads 1 --sample 60 --seed 6", false);
  REQUIRE(c.status == 0);
  CHECK(c.output != a.output);

  // --prime is printed first; a low temperature still draws from the vocabulary.
  auto p = run_tool("dsgeval", model + " --threads 1 --sample 30 --prime 'To be' --temperature 0.5", false);
  INFO(p.output);
  REQUIRE(p.status == 0);
  REQUIRE(p.output.size() == 35);
  CHECK(p.output.compare(0, 5, "To be") == 0);
  for (char ch : p.output) CHECK(vocabulary.count(ch) == 1);
}

TEST_CASE("dsgeval --sample errors: prime, non-TEXT config, mismatched model, options", "[apps][text]") {
  TempDir dir;
  const std::string model = train(dir);

  auto prime = run_tool("dsgeval", model + " --threads 1 --sample 5 --prime \"$(printf '\\001')\"");  // /bin/sh
  CHECK(prime.status == 1);
  CHECK_THAT(last_line(prime.output), Catch::Contains("--prime: byte 1 does not occur in the text"));

  auto temp = run_tool("dsgeval", model + " --sample 5 --temperature 0");
  CHECK(temp.status == 1);
  CHECK_THAT(last_line(temp.output), Catch::Contains("--temperature must be positive"));

  // A config without TEXT data (the tiny MLP on IDX files).
  dsg::test::write_learnable_idx(dir);
  std::ofstream(dir.file("tiny.prototxt")) << dsg::test::tiny_mlp_solver(dir.path().string(), 8);
  auto idx = run_tool("dsgeval", model + " --sample 5 --config " + dir.file("tiny.prototxt"));
  CHECK(idx.status == 1);
  CHECK_THAT(last_line(idx.output), Catch::Contains("does not read TEXT data"));

  // The config with another LSTM size does not match the trained weights.
  std::string cfg = read_all(kConfig);
  cfg.replace(cfg.find("num_output: 256"), 15, "num_output: 128");
  std::ofstream(dir.file("small.prototxt")) << cfg;
  auto mismatch = run_tool("dsgeval", model + " --sample 5 --config " + dir.file("small.prototxt") + " --data " +
                                          dir.file("corpus.txt"));
  CHECK(mismatch.status == 1);
  CHECK_THAT(last_line(mismatch.output), Catch::Contains("does not match config") && Catch::Contains("lstm"));

  // Another text with a different vocabulary: the Embed is too small for it.
  std::string wide;
  for (int b = 1; b < 256; ++b) wide.push_back(char(b));
  std::ofstream(dir.file("wide.txt"), std::ios::binary) << wide;
  auto vocab = run_tool("dsgeval", model + " --sample 5 --data " + dir.file("wide.txt"));
  CHECK(vocab.status == 1);
  CHECK_THAT(last_line(vocab.output), Catch::Contains("has input_dim 114") && Catch::Contains("255 distinct"));

  // --config only goes with --sample; --sample excludes the evaluation options.
  CHECK(run_tool("dsgeval", model + " --config " + kConfig).status != 0);
  CHECK(run_tool("dsgeval", model + " --sample 5 --json " + dir.file("x.json")).status != 0);
}
