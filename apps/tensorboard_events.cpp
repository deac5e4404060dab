#include "apps/tensorboard_events.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "runtime/error.hpp"
#include "runtime/log.hpp"
#include "tensorboard_event.pb.h"

namespace dsg::apps {
namespace {

double wall_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

const std::array<uint32_t, 256>& crc32c_table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;  // reflected Castagnoli
      t[i] = c;
    }
    return t;
  }();
  return table;
}

void put_le(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(char((v >> (8 * i)) & 0xff));
}

}  // namespace

uint32_t crc32c(const void* data, size_t size) {
  const auto& table = crc32c_table();
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < size; ++i) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(const void* data, size_t size) {
  const uint32_t c = crc32c(data, size);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

std::string tfrecord(const std::string& data) {
  std::string out, length;
  put_le(length, data.size(), 8);
  out += length;
  put_le(out, masked_crc32c(length.data(), length.size()), 4);
  out += data;
  put_le(out, masked_crc32c(data.data(), data.size()), 4);
  return out;
}

EventFileWriter::EventFileWriter(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw Error("--tensorboard: cannot create " + dir + ": " + ec.message());
  char host[256] = "localhost";
  if (gethostname(host, sizeof(host) - 1) != 0) std::snprintf(host, sizeof(host), "localhost");
  host[sizeof(host) - 1] = 0;
  // A second run in the same second gets its own file (TensorBoard reads them all).
  const long long seconds = static_cast<long long>(wall_time());
  for (int n = 0;; ++n) {
    path_ = (std::filesystem::path(dir) / strfmt("events.out.tfevents.%010lld.%s%s", seconds, host,
                                                n ? strfmt(".%d", n).c_str() : "")).string();
    if (!std::filesystem::exists(path_)) break;
  }
  out_.open(path_, std::ios::binary | std::ios::trunc);
  if (!out_) throw Error("cannot write " + path_);
  tensorboard::Event event;
  event.set_wall_time(wall_time());
  event.set_step(0);
  event.set_file_version("brain.Event:2");
  write_event(event.SerializeAsString());
  flush();
}

void EventFileWriter::write_event(const std::string& event_bytes) {
  out_ << tfrecord(event_bytes);
  if (!out_) throw Error("cannot write " + path_);
}

void EventFileWriter::scalar(const std::string& tag, int64_t step, double value) {
  tensorboard::Event event;
  event.set_wall_time(wall_time());
  event.set_step(step);
  auto* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  v->set_simple_value(float(value));
  write_event(event.SerializeAsString());
}

void EventFileWriter::histogram(const std::string& tag, int64_t step, const float* values, size_t count,
                                int buckets) {
  tensorboard::Event event;
  event.set_wall_time(wall_time());
  event.set_step(step);
  auto* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  tensorboard::HistogramProto* h = v->mutable_histo();
  double lo = 0, hi = 0, sum = 0, sumsq = 0;
  if (count > 0) lo = hi = values[0];
  for (size_t i = 0; i < count; ++i) {
    lo = std::min(lo, double(values[i]));
    hi = std::max(hi, double(values[i]));
    sum += values[i];
    sumsq += double(values[i]) * values[i];
  }
  h->set_min(lo);
  h->set_max(hi);
  h->set_num(double(count));
  h->set_sum(sum);
  h->set_sum_squares(sumsq);
  const int n = hi > lo ? std::max(1, buckets) : 1;
  const double width = (hi - lo) / n;
  std::vector<double> counts(size_t(n), 0.0);
  for (size_t i = 0; i < count; ++i) {
    // Bucket k holds (limit(k-1), limit(k)]: a value on a boundary belongs to the lower bucket.
    int k = width > 0 ? int(std::ceil((double(values[i]) - lo) / width)) - 1 : 0;
    counts[size_t(std::clamp(k, 0, n - 1))] += 1;
  }
  for (int k = 0; k < n; ++k) {
    h->add_bucket_limit(k + 1 == n ? hi : lo + width * (k + 1));
    h->add_bucket(counts[size_t(k)]);
  }
  write_event(event.SerializeAsString());
}

void EventFileWriter::flush() {
  out_.flush();
  if (!out_) throw Error("cannot write " + path_);
}

}  // namespace dsg::apps
