// The TEXT dataset: vocabulary, windows, the train/validation split, directories, the Data layer's
// [T, N] tops (data, next-character labels, cont), shuffling, determinism, seek and errors.
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>
#include <string>

#include "datasets/data_layer.hpp"
#include "datasets/data_paths.hpp"
#include "datasets/synthetic_data.hpp"
#include "datasets/text.hpp"

using namespace dsg;
using namespace dsg::test;

namespace {

void write_text(const std::string& path, const std::string& text) {
  write_bytes(path, std::vector<uint8_t>(text.begin(), text.end()));
}

DataParameter text_param(const std::string& source, int T, float fraction = 0.25f) {
  DataParameter p;
  p.set_backend(DataParameter::TEXT);
  p.set_source(source);
  p.set_batch_size(2);
  p.set_sequence_length(uint32_t(T));
  p.set_validation_fraction(fraction);
  return p;
}

const TextDataSource& as_text(const std::unique_ptr<DataSource>& s) {
  const auto* t = dynamic_cast<const TextDataSource*>(s.get());
  REQUIRE(t);
  return *t;
}

// Window i of a source as the original bytes.
std::string window(const TextDataSource& s, int64_t i) {
  std::string w;
  const uint8_t* p = s.pixels(i);
  for (int t = 0; t <= s.sequence_length(); ++t) w.push_back(char(s.vocabulary()[p[t]]));
  return w;
}

// 200 bytes of a deterministic pseudo-random text over "abcdefgh" (+ '\n' every 10th byte).
std::string pseudo_text(size_t n = 200) {
  std::string s;
  uint32_t x = 12345;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    s.push_back(i % 10 == 9 ? '\n' : char('a' + (x >> 16) % 8));
  }
  return s;
}

LayerParameter text_layer(const std::string& source, int T, int batch, Phase phase, float fraction = 0.25f) {
  LayerParameter p;
  p.set_name("text");
  p.set_type("Data");
  p.set_phase(phase);
  for (const char* top : {"data", "label", "cont"}) p.add_top(top);
  *p.mutable_data_param() = text_param(source, T, fraction);
  p.mutable_data_param()->set_batch_size(uint32_t(batch));
  return p;
}

// A set-up TEXT Data layer with its three tops.
struct TextFeed {
  explicit TextFeed(const LayerParameter& p) : layer(create_layer(p)) {
    std::mt19937_64 rng(1);
    layer->setup({}, {&data, &label, &cont}, rng);
  }
  DataLayer& dl() { return dynamic_cast<DataLayer&>(*layer); }
  const TextDataSource& src() { return dynamic_cast<const TextDataSource&>(dl().source()); }
  // Forwards one batch and returns the start offsets (within the split) of its windows, checking
  // the tops against the text.
  std::vector<int64_t> next_windows(uint64_t seed, const std::string& text) {
    Context ctx;
    ctx.seed = seed;
    layer->forward({}, {&data, &label, &cont}, ctx);
    const int T = data.shape(0), N = data.shape(1);
    const auto& vocab = src().vocabulary();
    std::vector<int64_t> starts;
    for (int j = 0; j < N; ++j) {
      std::string w;
      for (int t = 0; t < T; ++t) w.push_back(char(vocab[size_t(data.data()[t * N + j])]));
      // Windows start at multiples of T within the split: find the one that matches.
      const int64_t begin = src().split_begin();
      int64_t start = -1;
      for (int64_t i = 0; i < src().size() && start < 0; ++i)
        if (text.compare(size_t(begin + i * T), size_t(T), w) == 0) start = i;
      REQUIRE(start >= 0);
      for (int t = 0; t < T; ++t) {
        CHECK(vocab[size_t(label.data()[t * N + j])] == uint8_t(text[size_t(begin + start * T + t + 1)]));
        CHECK(cont.data()[t * N + j] == (t == 0 ? 0.0f : 1.0f));
      }
      starts.push_back(start);
    }
    return starts;
  }
  std::unique_ptr<Layer> layer;
  Tensor data, label, cont;
};

}  // namespace

TEST_CASE("TEXT: vocabulary is the sorted distinct bytes of the whole text", "[data][text]") {
  TempDir dir;
  // 'z' and '!' occur only in the validation part; indices must agree between the phases.
  const std::string text = "hello world\nhello there\n" + std::string("zz!z");
  write_text(dir.file("t.txt"), text);
  auto train = create_data_source(text_param(dir.file("t.txt"), 3, 0.25f), TRAIN);
  auto test = create_data_source(text_param(dir.file("t.txt"), 3, 0.25f), TEST);
  const std::set<uint8_t> distinct(text.begin(), text.end());
  const std::vector<uint8_t> expected(distinct.begin(), distinct.end());
  CHECK(as_text(train).vocabulary() == expected);
  CHECK(as_text(test).vocabulary() == expected);
  CHECK(train->num_classes() == int(expected.size()));
  CHECK(as_text(train).vocabulary_size() == 12);  // \n ' ' ! d e h l o r t w z
  CHECK(train->description().find("vocabulary of 12 symbols") != std::string::npos);
  CHECK(train->description().find(dir.file("t.txt")) != std::string::npos);
  // Symbols are indices into the vocabulary: '\n' is the smallest byte, 'z' the largest.
  CHECK(as_text(test).pixels(0)[0] == std::find(expected.begin(), expected.end(), uint8_t(text[21])) - expected.begin());
  CHECK(expected.front() == '\n');
  CHECK(expected.back() == 'z');
}

TEST_CASE("TEXT: windows of T + 1 characters at multiples of T, split train / validation", "[data][text]") {
  TempDir dir;
  const std::string text = pseudo_text(200);
  write_text(dir.file("t.txt"), text);
  const int T = 7;
  auto train = create_data_source(text_param(dir.file("t.txt"), T, 0.25f), TRAIN);
  auto test = create_data_source(text_param(dir.file("t.txt"), T, 0.25f), TEST);
  const TextDataSource& tr = as_text(train);
  const TextDataSource& te = as_text(test);
  CHECK(tr.split_begin() == 0);
  CHECK(tr.split_end() == 150);
  CHECK(te.split_begin() == 150);
  CHECK(te.split_end() == 200);
  CHECK(train->size() == (150 - 1) / T);
  CHECK(test->size() == (50 - 1) / T);
  CHECK(train->sequence_length() == T);
  CHECK(train->sample_shape() == std::vector<int>{1, 1, T + 1});
  for (int64_t i = 0; i < train->size(); ++i) {
    CHECK(window(tr, i) == text.substr(size_t(i * T), size_t(T + 1)));
    CHECK(train->label(i) == train->pixels(i)[T]);
  }
  for (int64_t i = 0; i < test->size(); ++i) CHECK(window(te, i) == text.substr(size_t(150 + i * T), size_t(T + 1)));
  // Every window stays inside its split.
  CHECK((train->size() - 1) * T + T < 150);
  CHECK(150 + (test->size() - 1) * T + T < 200);
}

TEST_CASE("TEXT: a directory is its regular text files in name order", "[data][text]") {
  TempDir dir;
  fs::create_directories(dir.path() / "corpus" / "sub");
  const std::string d = (dir.path() / "corpus").string();
  write_text(d + "/b", "second file\n");
  write_text(d + "/a", "first file\n");
  write_bytes(d + "/a.dat", {0, 0, 0, 2, 1, 0});  // binary (a fortune index): skipped
  fs::create_symlink(d + "/a", d + "/c.u8");       // symbolic link: skipped
  write_text(d + "/sub/x", "in a subdirectory\n");  // not a regular file of the directory
  TextCorpus c = read_text_corpus(d);
  CHECK(std::string(c.bytes.begin(), c.bytes.end()) == "first file\nsecond file\n");
  CHECK(c.description.find("2 text files") != std::string::npos);
  CHECK(c.description.find("1 binary") != std::string::npos);
  CHECK(c.description.find("1 symbolic link") != std::string::npos);
  CHECK(c.symbol['\n'] == 0);
  CHECK(c.symbol['Z'] == -1);

  // Gzipped text is inflated.
  write_bytes(dir.file("g.gz"), std::vector<uint8_t>{'a', 'b', 'c', 'a'}, true);
  TextCorpus g = read_text_corpus(dir.file("g.gz"));
  CHECK(std::string(g.bytes.begin(), g.bytes.end()) == "abca");
  CHECK(g.vocabulary == std::vector<uint8_t>{'a', 'b', 'c'});
}

TEST_CASE("TEXT Data layer: [T, N] tops, next-character labels, cont, TEST in order", "[data][text][layer]") {
  TempDir dir;
  const std::string text = pseudo_text(200);
  write_text(dir.file("t.txt"), text);
  const int T = 5, N = 3;
  TextFeed f(text_layer(dir.file("t.txt"), T, N, TEST));
  REQUIRE(f.data.shape() == std::vector<int>{T, N});
  REQUIRE(f.label.shape() == std::vector<int>{T, N});
  REQUIRE(f.cont.shape() == std::vector<int>{T, N});
  const int64_t windows = (50 - 1) / T;  // 9
  CHECK(f.dl().dataset_size() == windows);
  std::vector<int64_t> seen;
  for (int b = 0; b < 4; ++b) {
    auto w = f.next_windows(1, text);
    seen.insert(seen.end(), w.begin(), w.end());
  }
  for (size_t k = 0; k < seen.size(); ++k) CHECK(seen[k] == int64_t(k) % windows);  // sequential, wrapping
}

TEST_CASE("TEXT Data layer: TRAIN shuffles windows per epoch; seed and seek reproduce the stream", "[data][text][layer]") {
  TempDir dir;
  const std::string text = pseudo_text(400);
  write_text(dir.file("t.txt"), text);
  const LayerParameter p = text_layer(dir.file("t.txt"), 6, 4, TRAIN, 0.1f);
  TextFeed a(p);
  const int64_t n = a.dl().dataset_size();
  REQUIRE(n == (360 - 1) / 6);  // 59 windows
  std::vector<int64_t> stream;
  for (int b = 0; b < 30; ++b) {
    auto w = a.next_windows(9, text);
    stream.insert(stream.end(), w.begin(), w.end());
  }
  for (int e = 0; e < 2; ++e) {
    std::vector<int64_t> epoch(stream.begin() + e * n, stream.begin() + (e + 1) * n);
    std::vector<int64_t> sorted = epoch;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < n; ++i) CHECK(sorted[size_t(i)] == i);  // every window once per epoch
    CHECK(epoch != sorted);  // not in order
  }
  CHECK(std::vector<int64_t>(stream.begin(), stream.begin() + n) !=
        std::vector<int64_t>(stream.begin() + n, stream.begin() + 2 * n));

  TextFeed b(p), c(p);
  bool differs = false;
  for (int i = 0; i < 10; ++i) {
    CHECK(b.next_windows(9, text) == std::vector<int64_t>(stream.begin() + i * 4, stream.begin() + (i + 1) * 4));
    differs = differs || c.next_windows(10, text) != std::vector<int64_t>(stream.begin() + i * 4, stream.begin() + (i + 1) * 4);
  }
  CHECK(differs);

  TextFeed r(p);
  r.dl().seek(17);  // into the second epoch
  for (int i = 17; i < 30; ++i)
    CHECK(r.next_windows(9, text) == std::vector<int64_t>(stream.begin() + i * 4, stream.begin() + (i + 1) * 4));
  r.dl().seek(3);  // back, after forwards
  CHECK(r.next_windows(9, text) == std::vector<int64_t>(stream.begin() + 12, stream.begin() + 16));
}

TEST_CASE("TEXT Data layer: two tops (no cont) and --data replaces the source path", "[data][text][layer]") {
  TempDir dir;
  const std::string text = pseudo_text(100);
  write_text(dir.file("other.txt"), text);
  LayerParameter p = text_layer("/usr/share/games/fortunes", 4, 2, TEST);
  p.clear_top();
  p.add_top("data");
  p.add_top("label");
  NetParameter net;
  *net.add_layer() = p;
  resolve_data_sources(net, "", dir.file("other.txt"));
  CHECK(net.layer(0).data_param().source() == dir.file("other.txt"));
  auto layer = create_layer(net.layer(0));
  Tensor data, label;
  std::mt19937_64 rng(1);
  layer->setup({}, {&data, &label}, rng);
  layer->forward({}, {&data, &label}, Context{});
  REQUIRE(label.shape() == std::vector<int>{4, 2});
  // TEST windows in order from byte 75: window j starts at 75 + 4 j.
  const auto& vocab = dynamic_cast<const TextDataSource&>(dynamic_cast<DataLayer&>(*layer).source()).vocabulary();
  for (int t = 0; t < 4; ++t)
    for (int j = 0; j < 2; ++j) {
      CHECK(vocab[size_t(data.data()[t * 2 + j])] == uint8_t(text[size_t(75 + 4 * j + t)]));
      CHECK(vocab[size_t(label.data()[t * 2 + j])] == uint8_t(text[size_t(75 + 4 * j + t + 1)]));
    }
}

TEST_CASE("TEXT errors name the file and say what is wrong", "[data][text]") {
  TempDir dir;
  SECTION("missing file under the default corpus path hints at the Debian package") {
    const std::string missing = "/usr/share/games/fortunes/no-such-file";
    std::string err = error_text([&] { create_data_source(text_param(missing, 4), TRAIN); });
    CHECK(err.find(missing) != std::string::npos);
    CHECK(err.find("apt-get install fortunes") != std::string::npos);
  }
  SECTION("missing file elsewhere") {
    std::string err = error_text([&] { create_data_source(text_param(dir.file("nope.txt"), 4), TRAIN); });
    CHECK(err.find(dir.file("nope.txt")) != std::string::npos);
    CHECK(err.find("--data") != std::string::npos);
  }
  SECTION("empty text") {
    write_text(dir.file("empty.txt"), "");
    std::string err = error_text([&] { create_data_source(text_param(dir.file("empty.txt"), 4), TRAIN); });
    CHECK(err.find("no text (0 bytes)") != std::string::npos);
    CHECK(err.find(dir.file("empty.txt")) != std::string::npos);
  }
  SECTION("text shorter than T + 1") {
    write_text(dir.file("short.txt"), "abcdefghij");
    std::string err = error_text([&] { create_data_source(text_param(dir.file("short.txt"), 8), TRAIN); });
    CHECK(err.find("TRAIN part holds 7 of its 10 bytes, fewer than sequence_length + 1 = 9") != std::string::npos);
    err = error_text([&] { create_data_source(text_param(dir.file("short.txt"), 4), TEST); });
    CHECK(err.find("TEST part holds 3 of its 10 bytes") != std::string::npos);
    CHECK(err.find("validation_fraction") != std::string::npos);
    err = error_text([&] { create_data_source(text_param(dir.file("short.txt"), 4, 0.0f), TEST); });
    CHECK(err.find("TEST part holds 0 of its 10 bytes") != std::string::npos);
  }
  SECTION("bad parameters") {
    write_text(dir.file("t.txt"), pseudo_text(100));
    CHECK(error_text([&] { create_data_source(text_param(dir.file("t.txt"), 0), TRAIN); }).find("sequence_length") !=
          std::string::npos);
    CHECK(error_text([&] { create_data_source(text_param(dir.file("t.txt"), 4, 1.0f), TRAIN); })
              .find("validation_fraction 1 is outside [0, 1)") != std::string::npos);
  }
  SECTION("binary file, and a directory without text") {
    write_bytes(dir.file("bin"), {'a', 'b', 0, 'c'});
    CHECK(error_text([&] { create_data_source(text_param(dir.file("bin"), 1), TRAIN); })
              .find("not plain text (NUL byte at offset 2)") != std::string::npos);
    fs::create_directories(dir.path() / "d");
    write_bytes(dir.file("d/x.dat"), {1, 0});
    std::string err = error_text([&] { create_data_source(text_param(dir.file("d"), 1), TRAIN); });
    CHECK(err.find("holds no plain-text files (1 binary files and 0 symbolic links skipped)") != std::string::npos);
  }
  SECTION("transform_param, and three tops on an image dataset") {
    write_text(dir.file("t.txt"), pseudo_text(100));
    LayerParameter p = text_layer(dir.file("t.txt"), 4, 2, TRAIN);
    p.mutable_transform_param()->set_scale(0.5f);
    auto layer = create_layer(p);
    Tensor a, b, c;
    std::mt19937_64 rng(1);
    CHECK_THROWS_WITH(layer->setup({}, {&a, &b, &c}, rng), Catch::Contains("transform_param does not apply to TEXT"));
    LayerParameter q = text_layer(write_idx_pair(dir, "i", 4, 2, 2), 4, 2, TRAIN);
    q.mutable_data_param()->set_backend(DataParameter::IDX);
    auto image = create_layer(q);
    CHECK_THROWS_WITH(image->setup({}, {&a, &b, &c}, rng), Catch::Contains("at most 2 tops"));
  }
}
