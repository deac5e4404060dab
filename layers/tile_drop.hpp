// Tile-pattern synapse dropout (approximate random dropout's DropConnect form, Song et al., DATE
// 2019) for an InnerProduct layer Y [M, N] = X [M, K] W^T, W [N, K]. W is cut into tiles of
// tile_rows x tile_cols (the last row / column of tiles may be smaller), numbered row-major
// t = a * C + b (a: tile row, b: tile column, C tile columns). A pattern (period dp, offset o)
// keeps the tiles with (t + o) mod dp == 0, so every tile is kept with probability 1/dp when o is
// uniform, and the dropped-tile count follows the row-pattern model of layers/ard_distribution
// with units = the number of tiles. Kept weights are scaled by 1/(1 - p) (inverted DropConnect).
//
// Within tile row a the kept tile columns are b = r_a (mod dp) with r_a = (-(a C + o)) mod dp, so
// the tile rows fall into dp residue classes that read the same input columns. The kernels:
//   GROUPED   per class: gather its input columns of X and the matching block of W, one GEMM
//             [M, rows of the class] x [columns of the class] (dp GEMMs of about N/dp x K/dp);
//   PER_TILE  one GEMM per kept tile on strided views of X, W and Y (no gathers; measured faster on
//             LeNet-300-100 with 32 x 32 tiles, so it is the default).
// Backward mirrors both: dW gets only the kept tiles (scaled), dX the kept-tile products.
#pragma once
#include <cstdint>
#include <vector>

namespace dsg {

class TilePattern {
 public:
  // Tiles of W [n, k]; throws dsg::Error for non-positive sizes.
  TilePattern(int n, int k, int tile_rows, int tile_cols);
  int tiles() const { return rows_ * cols_; }
  // Sets the pattern for this pass (1 <= period, 0 <= offset < period); period 1 keeps everything.
  void set(int period, int offset);
  int period() const { return period_; }
  bool kept(int tile_row, int tile_col) const;
  int64_t kept_weights() const;  // weights in kept tiles

  // y [m, n] = scale * x [m, k] (W masked)^T + bias (bias may be null; dropped synapses only).
  void forward(bool grouped, const float* x, int m, const float* w, const float* bias, float scale, float* y);
  // dw [n, k] += scale * (dy^T x) on kept tiles; dx [m, k] = scale * dy (W masked) (when dx given).
  void backward(bool grouped, const float* x, int m, const float* w, const float* dy, float scale, float* dw,
                float* dx);

 private:
  int row_begin(int a) const { return a * tr_; }
  int row_end(int a) const;
  int col_begin(int b) const { return b * tc_; }
  int col_end(int b) const;
  void build_classes();

  int n_, k_, tr_, tc_, rows_, cols_;
  int period_ = 1, offset_ = 0;
  // Residue classes: weight rows and input columns of each, as index lists.
  std::vector<std::vector<int>> class_rows_, class_cols_;
  std::vector<float> xc_, wc_, yc_, dwc_, dxc_;
};

}  // namespace dsg
