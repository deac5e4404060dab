// Data layer sharding (data parallelism, DataLayer::set_shard): the shards 0..count-1 of a
// shuffled TRAIN stream, concatenated in rank order, are the unsharded layer's batch, bit for bit
// (data incl. random crops / mirrors, and labels), through epoch wraps and after seek().
#include <catch2/catch.hpp>

#include <vector>

#include "datasets/data_layer.hpp"
#include "datasets/synthetic_data.hpp"

using namespace dsg;
using namespace dsg::test;

namespace {

LayerParameter train_param(const std::string& source, int batch) {
  LayerParameter p;
  p.set_name("data");
  p.set_type("Data");
  p.set_phase(TRAIN);
  p.add_top("data");
  p.add_top("label");
  DataParameter* d = p.mutable_data_param();
  d->set_backend(DataParameter::IDX);
  d->set_source(source);
  d->set_batch_size(uint32_t(batch));
  // Crops and mirrors are keyed by the stream index k: a shard must draw the same ones.
  p.mutable_transform_param()->set_crop_size(4);
  p.mutable_transform_param()->set_mirror(true);
  return p;
}

struct Feed {
  Feed(const LayerParameter& p, int shard, int count) : layer(create_layer(p)) {
    std::mt19937_64 rng(1);
    layer->setup({}, {&data, &label}, rng);
    if (count > 0) dynamic_cast<DataLayer&>(*layer).set_shard(shard, count);
  }
  DataLayer& dl() { return dynamic_cast<DataLayer&>(*layer); }
  // One batch: data values then labels.
  std::pair<std::vector<float>, std::vector<float>> next(uint64_t seed) {
    Context ctx;
    ctx.seed = seed;
    layer->forward({}, {&data, &label}, ctx);
    return {std::vector<float>(data.data(), data.data() + data.count()),
            std::vector<float>(label.data(), label.data() + label.count())};
  }
  std::unique_ptr<Layer> layer;
  Tensor data, label;
};

}  // namespace

TEST_CASE("Data shards concatenated equal the unsharded TRAIN batch, across epochs and seeks", "[data][shard]") {
  TempDir dir;
  // 22 samples, global batch 8: batches wrap epochs at samples 22, 44, ... (mid-batch).
  const std::string source = write_idx_pair(dir, "sh", 22, 6, 6);
  for (int count : {2, 4}) {
    INFO(count << " shards");
    Feed whole(train_param(source, 8), 0, 0);
    std::vector<std::unique_ptr<Feed>> shards;
    for (int r = 0; r < count; ++r) shards.push_back(std::make_unique<Feed>(train_param(source, 8), r, count));
    REQUIRE(shards[0]->dl().batch_size() == 8 / count);
    auto compare = [&](int64_t batch) {
      INFO("batch " << batch);
      auto want = whole.next(11);
      std::vector<float> data, label;
      for (auto& s : shards) {
        auto got = s->next(11);
        REQUIRE(int64_t(got.second.size()) == 8 / count);
        data.insert(data.end(), got.first.begin(), got.first.end());
        label.insert(label.end(), got.second.begin(), got.second.end());
      }
      CHECK(data == want.first);
      CHECK(label == want.second);
    };
    for (int64_t b = 0; b < 7; ++b) compare(b);  // 56 samples: 2 epoch wraps
    // seek: backwards and forwards, the same batches as the unsharded stream.
    for (int64_t b : {3, 12}) {
      whole.dl().seek(b);
      for (auto& s : shards) s->dl().seek(b);
      compare(b);
      compare(b + 1);
    }
  }
}

TEST_CASE("Data shards: a batch that does not split evenly is refused by name", "[data][shard]") {
  TempDir dir;
  const std::string source = write_idx_pair(dir, "odd", 10, 6, 6);
  auto layer = create_layer(train_param(source, 5));
  Tensor data, label;
  std::mt19937_64 rng(1);
  layer->setup({}, {&data, &label}, rng);
  auto& dl = dynamic_cast<DataLayer&>(*layer);
  CHECK_THROWS_WITH(dl.set_shard(0, 2), Catch::Contains("does not split evenly"));
  CHECK_THROWS_WITH(dl.set_shard(2, 2), Catch::Contains("does not exist"));
  CHECK_NOTHROW(dl.set_shard(0, 5));
  CHECK(dl.batch_size() == 1);
}
