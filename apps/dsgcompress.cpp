// dsgcompress: model compression front end.
//   dsgcompress MODEL.dsgmodel -o OUT.dsgz [--index-bits B] [--no-blocks]
//       Deep Compression storage (compress/dsgz.hpp): k-means layers as codebook codes with
//       relative indices, TTQ layers as packed 2-bit codes + two scales, other sparse weights as
//       relative indices + floats, Huffman-coded, in a versioned container with checksums. Prints
//       a per-blob table (parameters, non-zeros, weight / index bits before -> after Huffman,
//       bytes before / after Huffman, ratio) and the total against 32-bit dense; then reads the
//       file back and checks that every decoded weight is bit-identical to the model's (a zero may
//       decode without its sign).
//   dsgcompress MODEL.dsgz -o OUT.dsgmodel --decode
//       The decoded model as a plain .dsgmodel (net + weights).
//   dsgcompress MODEL(.dsgmodel|.dsgz) [--format onnx] -o OUT.onnx [--data DIR] [--shared-weights]
//       The decoded model as ONNX (an output named *.onnx selects --format onnx); with
//       --shared-weights, quantized weights are exported as Gather(codebook, codes), the codes
//       as UINT8 when the codebook has at most 256 entries; with --onnx-normalize the Data layer's
//       mean_value / scale become graph nodes (the input takes raw pixel values).
//   dsgcompress MODEL(.dsgmodel|.dsgz) [--format npz] -o OUT.npz
//       The (decoded) weights as NumPy arrays "<layer>.weight", "<layer>.bias", ... for Python
//       users (compress/npz.hpp; numpy.load, then a PyTorch module's load_state_dict).
//   dsgcompress --thin MODEL.dsgmodel -o OUT [--data DIR]
//       Removes the output channels pruned by FILTER policies (compress/thin.hpp) and writes
//       OUT.prototxt (a plain solver config) and OUT.dsgmodel.
// The output's extension must fit what is written (check_output_name): .dsgz for the default
// format, .onnx for ONNX, .npz for NumPy, .dsgmodel for --decode, .prototxt / .dsgmodel / none for --thin; other
// extensions are accepted as given.
// Exit codes: apps/tool_main.hpp (0 ok, 1 runtime error with one line "dsgcompress: error: ...",
// 2 usage error with the usage printed); --version prints the version.
#include "apps/fast_blas.hpp"
#include "apps/tool_cli.hpp"
#include "apps/tool_main.hpp"
#include <google/protobuf/text_format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>

#include "compress/npz.hpp"
#include "compress/weight_blobs.hpp"
#include "datasets/data_paths.hpp"
#include "runtime/error.hpp"
#include "runtime/model_file.hpp"
#include "runtime/net.hpp"
#include "runtime/parallel.hpp"
#include "compress/thin.hpp"
#ifdef DSG_WITH_ONNX
#include "apps/onnx_export.hpp"
#endif

namespace fs = std::filesystem;
using namespace dsg;
using namespace dsg::compress;

namespace {

struct Options {
  std::string model, output, data_dir, format = "dsgz";
  bool thin = false, decode = false, no_blocks = false, shared_weights = false, onnx_normalize = false;
  int index_bits = 0;
  int threads = 1;
};

bool ends_with(const std::string& s, const std::string& e) {
  return s.size() >= e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0;
}

// OUT without a trailing .prototxt / .dsgmodel.
std::string output_stem(std::string out) {
  for (const char* ext : {".prototxt", ".dsgmodel"})
    if (out.size() > std::strlen(ext) && ends_with(out, ext)) out.resize(out.size() - std::strlen(ext));
  return out;
}

// Whether -o fits the mode: "" when it does or when its extension is none the tools write (.dsgz,
// .onnx, .dsgmodel, .prototxt, any case), else the usage error's message.
std::string lower_extension(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return ext;
}

std::string check_output_name(const Options& opt) {
  const std::string ext = lower_extension(opt.output);
  if (ext != ".dsgz" && ext != ".onnx" && ext != ".npz" && ext != ".dsgmodel" && ext != ".prototxt") return "";
  const char* writes = opt.thin ? "--thin writes OUT.prototxt and OUT.dsgmodel"
                       : opt.decode ? "--decode writes a .dsgmodel"
                       : opt.format == "onnx" ? "--format onnx writes an ONNX model (.onnx)"
                       : opt.format == "npz"  ? "--format npz writes NumPy arrays (.npz)"
                                              : "the default --format dsgz writes a .dsgz";
  const bool fits = opt.thin ? ext == ".prototxt" || ext == ".dsgmodel"
                    : opt.decode ? ext == ".dsgmodel"
                    : opt.format == "onnx" ? ext == ".onnx"
                    : opt.format == "npz"  ? ext == ".npz"
                                           : ext == ".dsgz";
  if (fits) return "";
  return "-o " + opt.output + ": the extension " + ext + " does not match the output (" + writes + ")";
}

// A .dsgmodel or a decoded .dsgz.
ModelFile read_any_model(const std::string& path, DsgzModel* dsgz = nullptr) {
  if (looks_like_dsgz(path)) {
    DsgzModel m = read_dsgz_file(path);
    ModelFile out = decode_model(m);
    if (dsgz) *dsgz = std::move(m);
    return out;
  }
  return read_model_file(path);
}

int run_thin(const Options& opt) {
  ModelFile model = read_model_file(opt.model);
  if (model.source_shape_size() == 0 && model.has_net()) {
    // Written by an older dsgtrain: measure the data shapes once from the dataset.
    NetParameter param = model.net();
    resolve_data_sources(param, ".", opt.data_dir);
    std::mt19937_64 rng(0);
    record_source_shapes(Net(param, TEST, rng), &model);
  }
  ThinnedModel thinned = thin_model(model, opt.model);
  const std::string stem = output_stem(opt.output);
  // Snapshots of a run on the thinned config are named after it.
  thinned.solver.set_snapshot_prefix(fs::path(stem).filename().string());
  thinned.model.mutable_solver()->set_snapshot_prefix(thinned.solver.snapshot_prefix());
  const fs::path dir = fs::path(stem).parent_path();
  if (!dir.empty()) fs::create_directories(dir);
  std::string text;
  if (!google::protobuf::TextFormat::PrintToString(thinned.solver, &text))
    throw Error("cannot format the thinned solver configuration");
  text = "# Thinned by `dsgcompress --thin` from " + opt.model +
         ": FILTER-pruned output channels and the inputs that consumed them are removed.\n"
         "# Weights: " + fs::path(stem + ".dsgmodel").filename().string() +
         " (a plain model: no sparsity_param, no schedule).\n" + text;
  write_file_atomically(stem + ".prototxt", text);
  write_model_file(stem + ".dsgmodel", thinned.model);
  std::printf("dsgcompress --thin %s\n", opt.model.c_str());
  for (const auto& line : thin_report(thinned)) std::printf("%s\n", line.c_str());
  std::printf("wrote %s.prototxt and %s.dsgmodel\n", stem.c_str(), stem.c_str());
  return 0;
}

std::string bits_cell(int fixed, double huffman, bool huffman_applies) {
  if (fixed == 0) return "-";
  return huffman_applies ? strfmt("%d -> %.2f", fixed, huffman) : strfmt("%d", fixed);
}

std::string ratio_cell(double dense, double stored) { return stored > 0 ? strfmt("%.1fx", dense / stored) : "-"; }

int run_dsgz(const Options& opt) {
  const ModelFile model = read_model_file(opt.model);
  CompressOptions co;
  co.index_bits = opt.index_bits;
  co.try_blocks = !opt.no_blocks;
  CompressResult r = compress_model(model, co);
  std::string bytes(r.bytes.begin(), r.bytes.end());
  write_file_atomically(opt.output, bytes);

  std::printf("dsgcompress %s -> %s\n\n", opt.model.c_str(), opt.output.c_str());
  std::printf("| blob | encoding | params | non-zeros | block | weight bits | index bits | fillers | bytes before Huffman | bytes | ratio |\n");
  std::printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  int64_t params = 0, nonzeros = 0, fixed = 0, stored = 0;
  for (const auto& s : r.stats) {
    const bool coded = s.kind == BlobKind::CODEBOOK || s.kind == BlobKind::SPARSE_F32;
    std::printf("| %s/%d | %s | %lld | %lld | %s | %s | %s | %s | %lld | %lld | %s |\n", s.layer.c_str(), s.index,
                blob_kind_name(s.kind), (long long)s.params, (long long)s.nonzeros,
                coded ? std::to_string(s.block).c_str() : "-",
                bits_cell(s.weight_bits, s.weight_bits_huffman, s.kind == BlobKind::CODEBOOK).c_str(),
                bits_cell(coded ? s.index_bits : 0, s.index_bits_huffman, true).c_str(),
                coded ? std::to_string(s.fillers).c_str() : "-", (long long)s.bytes_fixed, (long long)s.bytes,
                ratio_cell(4.0 * double(s.params), double(s.bytes)).c_str());
    params += s.params, nonzeros += s.nonzeros, fixed += s.bytes_fixed, stored += s.bytes;
  }
  const double dense = 4.0 * double(params);
  std::printf("| **total** | | %lld | %lld (%.2f%%) | | | | | %lld | %lld | %s |\n\n", (long long)params,
              (long long)nonzeros, 100.0 * double(nonzeros) / double(std::max<int64_t>(1, params)), (long long)fixed,
              (long long)stored, ratio_cell(dense, double(stored)).c_str());
  std::printf("32-bit dense parameters: %.0f bytes\n", dense);
  std::printf("parameters before Huffman: %lld bytes (%s); after Huffman: %lld bytes (%s)\n", (long long)fixed,
              ratio_cell(dense, double(fixed)).c_str(), (long long)stored, ratio_cell(dense, double(stored)).c_str());
  std::printf("file: %zu bytes = parameters + network description %lld + container %lld; compression %s\n",
              r.bytes.size(), (long long)r.net_bytes, (long long)(int64_t(r.bytes.size()) - stored - r.net_bytes),
              ratio_cell(dense, double(r.bytes.size())).c_str());

  // Read the file back: every decoded weight must equal the model's bit for bit (a zero may lose
  // its sign: same_weight).
  ModelFile decoded = decode_model(read_dsgz_file(opt.output));
  if (decoded.param_size() != model.param_size()) throw Error("round trip: the decoded model has a different blob count");
  for (int i = 0; i < model.param_size(); ++i) {
    const auto& a = model.param(i).blob().data();
    const auto& b = decoded.param(i).blob().data();
    if (a.size() != b.size() || !std::equal(a.begin(), a.end(), b.begin(), same_weight))
      throw Error("round trip: blob " + model.param(i).layer() + "/" + std::to_string(model.param(i).index()) +
                  " does not decode to the same weights");
  }
  std::printf("round trip: all %d blobs decode bit-identical\n", model.param_size());
  return 0;
}

int run_decode(const Options& opt) {
  ModelFile m = read_any_model(opt.model);
  write_model_file(opt.output, m);
  std::printf("decoded %s -> %s (%d blobs)\n", opt.model.c_str(), opt.output.c_str(), m.param_size());
  return 0;
}

int run_npz(const Options& opt) {
  const ModelFile model = read_any_model(opt.model);
  const std::vector<NpyArray> arrays = model_arrays(model);
  write_npz(opt.output, arrays);
  std::printf("wrote %s (%zu arrays:", opt.output.c_str(), arrays.size());
  for (const auto& a : arrays) std::printf(" %s", a.name.c_str());
  std::printf(")\n");
  return 0;
}

int run_onnx(const Options& opt) {
#ifdef DSG_WITH_ONNX
  DsgzModel dsgz;
  ModelFile model = read_any_model(opt.model, &dsgz);
  NetParameter param = model.net();
  resolve_data_sources(param, ".", opt.data_dir);
  std::mt19937_64 rng(0);
  Net net(param, TEST, rng);
  net.params_from_proto(model);
  OnnxExportOptions eo;
  eo.normalize_inputs = opt.onnx_normalize;
  if (opt.shared_weights) {
    // Codebooks from the .dsgz blobs, or from a snapshot's k-means / TTQ quantizer state.
    for (const auto& b : dsgz.blobs) {
      if (b.kind != BlobKind::CODEBOOK && b.kind != BlobKind::TERNARY) continue;
      std::vector<uint32_t> codes = decode_codes(b);
      eo.shared[{b.layer, b.index}] = {b.codebook, std::vector<int32_t>(codes.begin(), codes.end())};
    }
    for (const auto& q : model.quantizer()) {
      if (!q.active()) continue;
      const auto* codes = reinterpret_cast<const uint8_t*>(q.codes().data());
      eo.shared[{q.layer(), 0}] = {std::vector<float>(q.codebook().begin(), q.codebook().end()),
                                   std::vector<int32_t>(codes, codes + q.codes().size())};
    }
    if (eo.shared.empty()) throw Error("--shared-weights: the model has no quantized (codebook) layers");
  }
  export_onnx(net, opt.output, eo);
  std::printf("wrote %s (ONNX opset %d%s%s)\n", opt.output.c_str(), eo.opset,
              opt.shared_weights ? strfmt(", %zu blobs as Gather(codebook, codes)", eo.shared.size()).c_str() : "",
              opt.onnx_normalize ? ", input normalization in the graph" : "");
  return 0;
#else
  (void)opt;
  throw Error("this dsgcompress was built without ONNX support", "apt-get install libonnx-dev, then rebuild");
#endif
}

}  // namespace

int main(int argc, char** argv) {
  dsg::apps::select_fast_blas_kernels(argv);
  CLI::App app{"dsgcompress: compress a trained DSG model (.dsgz), decode it, export ONNX, or thin it"};
  Options opt;
  app.add_option("model", opt.model, "a .dsgmodel snapshot written by dsgtrain (or a .dsgz for --decode / --format onnx)")
      ->required();
  app.add_option("-o,--output", opt.output, "output file (OUT.dsgz; OUT.onnx; OUT.dsgmodel; for --thin the stem)")
      ->required();
  auto* format = app.add_option("--format", opt.format,
                                "dsgz (default), onnx or npz (NumPy arrays for Python); an OUT ending in .onnx / .npz selects it")
                     ->check(CLI::IsMember({"dsgz", "onnx", "npz"}));
  app.add_option("--index-bits", opt.index_bits, "relative-index bits for every blob (default: the smallest per blob)")
      ->check(CLI::Range(1, 12));
  app.add_flag("--no-blocks", opt.no_blocks, "one index per weight even when whole kernels / filters are pruned");
  app.add_flag("--shared-weights", opt.shared_weights, "ONNX: export quantized weights as Gather(codebook, codes)");
  app.add_flag("--onnx-normalize", opt.onnx_normalize,
               "ONNX: the input's mean_value / scale as graph nodes (the graph takes raw pixel values)");
  app.add_flag("--decode", opt.decode, "decode a .dsgz into a plain .dsgmodel");
  app.add_flag("--thin", opt.thin, "remove FILTER-pruned channels: write a smaller plain model (OUT.prototxt, OUT.dsgmodel)");
  app.add_option("--data", opt.data_dir, "directory holding the data files named in the model's net");
  app.add_option("--threads", opt.threads, "CPU threads (default 1)")->check(dsg::apps::thread_count());
  if (auto status = dsg::apps::parse_command_line(app, "dsgcompress", argc, argv)) return *status;
  // An output named *.onnx / *.npz selects that format unless another mode is asked for.
  if (format->count() == 0 && !opt.thin && !opt.decode && lower_extension(opt.output) == ".onnx")
    opt.format = "onnx";
  if (format->count() == 0 && !opt.thin && !opt.decode && lower_extension(opt.output) == ".npz")
    opt.format = "npz";
  if (int(opt.thin) + int(opt.decode) + int(opt.format != "dsgz") > 1)
    return dsg::apps::usage_error(app, "dsgcompress", "choose one of --thin, --decode and --format onnx|npz");
  if (opt.shared_weights && opt.format != "onnx")
    return dsg::apps::usage_error(app, "dsgcompress", "--shared-weights applies to --format onnx");
  if (opt.onnx_normalize && opt.format != "onnx")
    return dsg::apps::usage_error(app, "dsgcompress", "--onnx-normalize applies to --format onnx");
  const std::string bad_output = check_output_name(opt);
  if (!bad_output.empty()) return dsg::apps::usage_error(app, "dsgcompress", bad_output);
  dsg::apps::warn_thread_count("dsgcompress", opt.threads);
  set_num_threads(opt.threads);
  return dsg::apps::run_reporting_errors("dsgcompress", [&] {
    if (opt.thin) return run_thin(opt);
    if (opt.decode) return run_decode(opt);
    if (opt.format == "onnx") return run_onnx(opt);
    if (opt.format == "npz") return run_npz(opt);
    return run_dsgz(opt);
  });
}
