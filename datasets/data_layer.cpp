// Data layer: batches from a DataSource with Caffe's transform_param (see datasets/data_layer.hpp).
#include <algorithm>
#include <cstring>

#include "datasets/data_layer.hpp"
#include "runtime/error.hpp"
#include "runtime/log.hpp"
#include "runtime/rng.hpp"

namespace dsg {
namespace {

// Tags of the counter-based streams used for the per-sample random choices.
constexpr int64_t kMirrorStream = 1, kCropHStream = 2, kCropWStream = 3;

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Uniform integer in [0, n) from 64 random bits (Lemire's multiply; portable across libraries,
// unlike std::uniform_int_distribution).
uint64_t bounded(uint64_t bits, uint64_t n) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(bits) * n) >> 64);
}

}  // namespace

DataLayer::DataLayer(const LayerParameter& param) : Layer(param) {}

DataLayer::~DataLayer() { stop_worker(); }

int64_t DataLayer::dataset_size() const { return source().size(); }

const DataSource& DataLayer::source() const {
  if (!source_) throw Error(where() + "source() called before setup");
  return *source_;
}

void DataLayer::layer_setup(const TensorVec&, const TensorVec& top, std::mt19937_64&) {
  if (!param_.has_data_param()) throw Error(where() + "missing data_param");
  const DataParameter& dp = param_.data_param();
  const TransformationParameter& tp = param_.transform_param();
  phase_ = param_.phase();
  if (dp.batch_size() == 0)
    throw Error(where() + "data_param.batch_size is missing or 0", "set data_param { batch_size: 64 }");
  // Caffe's deprecated copies of the transform fields would be silently ignored here.
  if (dp.has_scale() || dp.has_mean_file() || dp.has_crop_size() || dp.has_mirror())
    throw Error(where() + "data_param.scale/mean_file/crop_size/mirror are not read",
                "move them into transform_param { ... }");
  if (tp.has_mean_file())
    throw Error(where() + "transform_param.mean_file is not supported", "use mean_value (one or one per channel)");
  if (tp.force_color() || tp.force_gray())
    throw Error(where() + "transform_param.force_color/force_gray are not supported");
  if (dp.rand_skip() != 0) log_warn(where() + "data_param.rand_skip is ignored (shuffling is per epoch)");

  try {
    source_ = create_data_source(dp, phase_);
  } catch (const Error& e) {
    throw Error(where() + e.what(), e.hint());
  }
  log_info(where() + source_->description());
  seq_len_ = source_->sequence_length();
  if (seq_len_ > 0) {
    if (param_.has_transform_param())
      throw Error(where() + "transform_param does not apply to TEXT sequences", "remove transform_param");
    batch_size_ = global_batch_ = static_cast<int>(dp.batch_size());
    shuffle_ = phase_ == TRAIN && dp.shuffle();
    prefetch_data_.assign(size_t(batch_size_) * size_t(seq_len_), 0.0f);
    prefetch_labels_.assign(size_t(batch_size_) * size_t(seq_len_), 0.0f);
    return;
  }
  if (top.size() > 2) throw Error(where() + "image datasets give at most 2 tops (data, label)");

  const std::vector<int> shape = source_->sample_shape();
  channels_ = shape[0];
  height_ = shape[1];
  width_ = shape[2];
  batch_size_ = global_batch_ = static_cast<int>(dp.batch_size());
  shuffle_ = phase_ == TRAIN && dp.shuffle();
  mirror_ = phase_ == TRAIN && tp.mirror();
  scale_ = tp.scale();
  crop_ = static_cast<int>(tp.crop_size());
  if (crop_ > height_ || crop_ > width_)
    throw Error(where() + strfmt("crop_size %d exceeds the %dx%d images", crop_, height_, width_));
  out_h_ = crop_ ? crop_ : height_;
  out_w_ = crop_ ? crop_ : width_;
  const int nmean = tp.mean_value_size();
  if (nmean != 0 && nmean != 1 && nmean != channels_)
    throw Error(where() + strfmt("transform_param has %d mean_value entries; need 1 or %d (one per channel)",
                                 nmean, channels_));
  mean_.assign(channels_, 0.0f);
  for (int c = 0; c < channels_; ++c) mean_[c] = nmean == 0 ? 0.0f : tp.mean_value(nmean == 1 ? 0 : c);

  prefetch_data_.assign(size_t(batch_size_) * channels_ * out_h_ * out_w_, 0.0f);
  prefetch_labels_.assign(size_t(batch_size_), 0.0f);
}

void DataLayer::reshape(const TensorVec&, const TensorVec& top) {
  if (seq_len_ > 0) {
    for (Tensor* t : top) t->reshape({seq_len_, batch_size_});
    return;
  }
  top[0]->reshape({batch_size_, channels_, out_h_, out_w_});
  if (top.size() > 1) top[1]->reshape({batch_size_});
}

int64_t DataLayer::sample_at(int64_t k, uint64_t seed) {
  const int64_t n = source_->size();
  const int64_t epoch = k / n, pos = k % n;
  if (!shuffle_) return pos;
  for (auto& o : orders_)
    if (o.epoch == epoch) return o.order[size_t(pos)];
  EpochOrder& slot = orders_[0].epoch < orders_[1].epoch ? orders_[0] : orders_[1];
  slot.epoch = epoch;
  slot.order.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) slot.order[size_t(i)] = i;
  std::mt19937_64 rng(splitmix64(splitmix64(splitmix64(seed) ^ key()) ^ uint64_t(epoch)));
  for (int64_t i = n - 1; i > 0; --i) std::swap(slot.order[size_t(i)], slot.order[bounded(rng(), uint64_t(i) + 1)]);
  return slot.order[size_t(pos)];
}

void DataLayer::transform(const uint8_t* pixels, int64_t k, uint64_t seed, float* out) const {
  int h_off = 0, w_off = 0;
  if (crop_) {
    if (phase_ == TRAIN) {
      const uint64_t idx = uint64_t(k);
      h_off = std::min(height_ - crop_, int(counter_uniform(seed, counter_stream(kCropHStream, key()), idx) *
                                            float(height_ - crop_ + 1)));
      w_off = std::min(width_ - crop_, int(counter_uniform(seed, counter_stream(kCropWStream, key()), idx) *
                                           float(width_ - crop_ + 1)));
    } else {
      h_off = (height_ - crop_) / 2;
      w_off = (width_ - crop_) / 2;
    }
  }
  const bool flip = mirror_ && counter_uniform(seed, counter_stream(kMirrorStream, key()), uint64_t(k)) < 0.5f;
  for (int c = 0; c < channels_; ++c) {
    const float mean = mean_[c];
    for (int y = 0; y < out_h_; ++y) {
      const uint8_t* row = pixels + (size_t(c) * height_ + size_t(y + h_off)) * width_ + w_off;
      float* dst = out + (size_t(c) * out_h_ + size_t(y)) * out_w_;
      if (flip) {
        for (int x = 0; x < out_w_; ++x) dst[x] = (float(row[out_w_ - 1 - x]) - mean) * scale_;
      } else {
        for (int x = 0; x < out_w_; ++x) dst[x] = (float(row[x]) - mean) * scale_;
      }
    }
  }
}

void DataLayer::fill_batch(int64_t batch, uint64_t seed, float* data, float* labels) {
  if (seq_len_ > 0) {  // window j's step t goes to t * N + j (time-major)
    for (int j = 0; j < batch_size_; ++j) {
      const uint8_t* s = source_->pixels(sample_at(batch * global_batch_ + shard_offset_ + j, seed));
      for (int t = 0; t < seq_len_; ++t) {
        data[size_t(t) * batch_size_ + j] = float(s[t]);
        labels[size_t(t) * batch_size_ + j] = float(s[t + 1]);
      }
    }
    return;
  }
  const size_t sample = size_t(channels_) * out_h_ * out_w_;
  for (int j = 0; j < batch_size_; ++j) {
    const int64_t k = batch * global_batch_ + shard_offset_ + j;
    const int64_t i = sample_at(k, seed);
    transform(source_->pixels(i), k, seed, data + size_t(j) * sample);
    labels[j] = float(source_->label(i));
  }
}

void DataLayer::worker_loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || (requested_ >= 0 && !ready_); });
    if (stop_) return;
    const int64_t batch = requested_;
    const uint64_t seed = seed_;
    lock.unlock();
    std::exception_ptr error;
    try {
      fill_batch(batch, seed, prefetch_data_.data(), prefetch_labels_.data());
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    error_ = error;
    ready_ = true;
    requested_ = -1;
    cv_.notify_all();
  }
}

void DataLayer::start_worker(uint64_t seed) {
  for (auto& o : orders_) o.epoch = -1;  // permutations depend on the seed
  {
    std::lock_guard<std::mutex> lock(mu_);
    seed_ = seed;
    stop_ = false;
    ready_ = false;
    error_ = nullptr;
    requested_ = cursor_;
  }
  worker_ = std::thread([this] { worker_loop(); });
  running_ = true;
}

void DataLayer::stop_worker() {
  if (!running_) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  worker_.join();
  running_ = false;
}

void DataLayer::seek(int64_t batch_index) {
  if (batch_index < 0) throw Error(where() + strfmt("seek to negative batch %lld", (long long)batch_index));
  stop_worker();
  cursor_ = batch_index;
}

void DataLayer::set_shard(int index, int count) {
  if (count < 1 || index < 0 || index >= count)
    throw Error(where() + strfmt("shard %d of %d does not exist", index, count));
  if (global_batch_ % count != 0)
    throw Error(where() + strfmt("batch_size %d does not split evenly over %d ranks", global_batch_, count),
                strfmt("use a batch_size divisible by %d (it is the global batch; each rank takes batch_size / ranks)",
                       count));
  stop_worker();
  batch_size_ = global_batch_ / count;
  shard_offset_ = index * batch_size_;
  const size_t steps = seq_len_ > 0 ? size_t(seq_len_) : 1;
  const size_t sample = seq_len_ > 0 ? 1 : size_t(channels_) * out_h_ * out_w_;
  prefetch_data_.assign(size_t(batch_size_) * steps * sample, 0.0f);
  prefetch_labels_.assign(size_t(batch_size_) * steps, 0.0f);
}

void DataLayer::forward_cpu(const TensorVec&, const TensorVec& top, const Context& ctx) {
  if (!running_ || seed_ != ctx.seed) {
    stop_worker();
    start_worker(ctx.seed);
  }
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return ready_; });
  if (error_) {
    std::exception_ptr error = error_;
    lock.unlock();
    stop_worker();  // the next forward starts afresh at the same batch
    std::rethrow_exception(error);
  }
  lock.unlock();
  // The worker waits while ready_ is set, so the buffers can be read without the lock.
  std::memcpy(top[0]->mutable_data(), prefetch_data_.data(), prefetch_data_.size() * sizeof(float));
  if (top.size() > 1)
    std::memcpy(top[1]->mutable_data(), prefetch_labels_.data(), prefetch_labels_.size() * sizeof(float));
  if (top.size() > 2) {  // cont: every window starts a sequence
    float* cont = top[2]->mutable_data();
    std::fill(cont, cont + top[2]->count(), 1.0f);
    std::fill(cont, cont + batch_size_, 0.0f);
  }
  lock.lock();
  ready_ = false;
  requested_ = ++cursor_;
  lock.unlock();
  cv_.notify_all();
}

void DataLayer::forward_cuda(const TensorVec& bottom, const TensorVec& top, const Context& ctx) {
  forward_cpu(bottom, top, ctx);
  // The host copies are the head now: reading each top on the device moves it across once.
  for (Tensor* t : top) t->data(ctx.device);
}

DSG_REGISTER_LAYER("Data", DataLayer);

}  // namespace dsg
