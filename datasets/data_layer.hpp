// DataLayer (type "Data"): feeds batches from a DataSource (IDX, CIFAR-10/100, TEXT) into the net.
//
// TEXT (a sequence source, datasets/text.hpp): tops data [T, N], label [T, N] (the next symbol)
// and, optionally, cont [T, N] (0 at t = 0, 1 after), time-major; transform_param does not apply.
// Image sources give at most two tops. Sample order, seeding and seek are the same for both.
//
// Tops: data [N, C, H', W'] float and, optionally, label [N] float, where N = batch_size and
// H' = W' = crop_size when cropping (else the source's H, W). Each value is
//   (pixel - mean_value[c]) * scale          (transform_param; mean_value has 1 or C entries).
//
// The layer's phase is LayerParameter.phase (the Net sets it, as in Caffe; default TRAIN). It
// picks the split (CIFAR), and in TRAIN enables shuffling (data_param.shuffle), random crops
// and random mirroring (transform_param.mirror); TEST reads in order with center crops.
//
// Order: the layer emits an endless stream of samples; sample k (k = batch * N + j) is taken
// from epoch e = k / size at position p = k % size. In TRAIN with shuffle, p goes through a
// permutation of epoch e drawn from (ctx.seed, key(), e), so every sample appears exactly once
// per epoch. Crop/mirror draws are dsg::counter_uniform keyed by (ctx.seed, key(), k). The
// stream is thus a pure function of (seed, batch index): seek(b) followed by forwards yields
// exactly the batches an uninterrupted run produces from batch b on (resuming relies on this).
//
// A prefetch thread prepares the next batch while the net consumes the current one. It starts
// on the first forward (the seed arrives with the Context), restarts on seek() or when the seed
// changes, and stops in the destructor; an exception in it is rethrown by forward().
//
// Sharding (data parallelism, set_shard): with `count` ranks, rank r's batch b holds stream samples
// k = b * B + r * B / count + j, j < B / count (B = the configured batch_size), so the ranks
// together see the single-process order, and crops and mirrors (keyed by k) are the same too.
//
// On a CUDA device (forward_cuda) the batch is filled on the host exactly as on the CPU and each
// top is copied to the device once per batch (one counted transfer per top), so the device tops
// equal the CPU's bit for bit.
#pragma once
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "datasets/source.hpp"
#include "runtime/batch_source.hpp"
#include "runtime/layer.hpp"

namespace dsg {

class DataLayer : public Layer, public BatchSource {
 public:
  explicit DataLayer(const LayerParameter& param);
  ~DataLayer() override;

  const char* type() const override { return "Data"; }
  int exact_num_bottoms() const override { return 0; }
  int min_num_tops() const override { return 1; }
  int max_num_tops() const override { return 3; }
  bool allow_backward_to(int) const override { return false; }
  // Batches are produced in host memory whatever the device; forward_cuda copies them over.
  bool supports(DeviceType, LayerMode mode) const override { return mode == LayerMode::kDense; }
  bool is_data_layer() const override { return true; }

  // Number of samples in the source (one epoch); valid after setup.
  int64_t dataset_size() const override;
  int batch_size() const override { return batch_size_; }
  // Makes the next forward return batch `batch_index` of the stream (0 = the first batch).
  void seek(int64_t batch_index) override;
  void set_shard(int index, int count) override;
  // Index of the batch the next forward returns.
  int64_t next_batch() const { return cursor_; }
  // The dataset; valid after setup.
  const DataSource& source() const;

 protected:
  void layer_setup(const TensorVec& bottom, const TensorVec& top, std::mt19937_64& rng) override;
  void reshape(const TensorVec& bottom, const TensorVec& top) override;
  void forward_cpu(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override;
  void backward_cpu(const TensorVec&, const std::vector<bool>&, const TensorVec&, const Context&) override {}
  // The CPU forward into the tops' host copies, then one host-to-device copy per top.
  void forward_cuda(const TensorVec& bottom, const TensorVec& top, const Context& ctx) override;
  void backward_cuda(const TensorVec&, const std::vector<bool>&, const TensorVec&, const Context&) override {}

 private:
  // Writes batch `batch` for `seed` into data (N*C*H'*W') and labels (N). Worker thread only.
  void fill_batch(int64_t batch, uint64_t seed, float* data, float* labels);
  // Source index of stream sample k. Worker thread only (uses the permutation cache).
  int64_t sample_at(int64_t k, uint64_t seed);
  void transform(const uint8_t* pixels, int64_t k, uint64_t seed, float* out) const;
  void start_worker(uint64_t seed);
  void stop_worker();
  void worker_loop();

  std::unique_ptr<DataSource> source_;
  Phase phase_ = TRAIN;
  int batch_size_ = 0;       // samples per forward (this rank's share)
  int global_batch_ = 0;     // the configured batch_size: samples per step of the stream
  int shard_offset_ = 0;     // this rank's first sample within each global batch
  bool shuffle_ = false;
  int channels_ = 0, height_ = 0, width_ = 0;  // source sample shape
  int out_h_ = 0, out_w_ = 0;                   // after cropping
  int crop_ = 0;
  int seq_len_ = 0;  // time steps T of a sequence source (TEXT), 0 for images
  bool mirror_ = false;
  float scale_ = 1.0f;
  std::vector<float> mean_;  // one per channel

  // Permutation cache (worker thread): the two most recent epochs.
  struct EpochOrder {
    int64_t epoch = -1;
    std::vector<int64_t> order;
  };
  EpochOrder orders_[2];

  // Prefetch state, guarded by mu_ (buffers are handed over through ready_).
  std::thread worker_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool running_ = false;   // worker_ started (main thread only)
  bool stop_ = false;
  bool ready_ = false;     // prefetch buffers hold batch cursor_ (or error_ is set)
  int64_t requested_ = -1; // batch the worker should produce next; -1 = none
  std::exception_ptr error_;
  uint64_t seed_ = 0;
  int64_t cursor_ = 0;
  std::vector<float> prefetch_data_, prefetch_labels_;
};

}  // namespace dsg
