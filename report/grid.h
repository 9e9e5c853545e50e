#pragma once
// A contact sheet of example images: each tile min-max normalised on its own, magnified by
// nearest neighbour, captioned underneath ("#1234 y=7"), and framed in red when highlighted
// (a known-corrupted example). White background, optional title row.
//
// Layout (all in output pixels, so a caller or test can find any tile):
//   a cell is as wide as the widest tile or caption and as tall as the tallest tile plus the
//   caption row (kCaptionGap + kGlyphHeight, when any caption is non-empty);
//   cells sit kGridPadding apart and kGridPadding from the edges, below the title row
//   (kGridPadding + title text height at kTitleScale, when there is a title);
//   a tile is centred horizontally in its cell and top-aligned; its caption is centred too, and
//   starts kCaptionGap below the tallest tile so that captions in a row line up;
//   the highlight frame is kHighlightBorder thick and lies in the padding just outside the tile.
#include <string>
#include <vector>

#include "report/image.h"

namespace lethe::report {

inline constexpr int kGridPadding = 6;
inline constexpr int kHighlightBorder = 2;
inline constexpr int kCaptionGap = 3;
inline constexpr int kTitleScale = 2;
inline constexpr Rgb kHighlightColor{214, 24, 24};
inline constexpr Rgb kNonFiniteColor{255, 0, 255};

struct Tile {
  const float* pixels = nullptr;  // CHW, any range; not owned, must outlive the call
  int channels = 1, height = 0, width = 0;  // channels: 1 (grayscale) or 3 (RGB)
  std::string caption;
  bool highlight = false;
};

struct GridLayout {
  int columns = 0, rows = 0;
  int cell_width = 0, cell_height = 0;
  int title_height = 0;  // height of the title row including its top padding; 0 without a title
  int width = 0, height = 0;

  // Top-left corner of cell `index` (row-major).
  int cell_x(int index) const;
  int cell_y(int index) const;
};

// The geometry image_grid will use; throws an Error for bad tiles or arguments.
GridLayout layout_grid(const std::vector<Tile>& tiles, int columns, int scale = 3, const std::string& title = "");

// Renders the grid. Non-finite pixel values are left out of the normalisation and drawn
// magenta; a tile whose finite values are all equal is drawn mid-grey. An empty tile list gives
// just the title row (or a blank padding square).
Image image_grid(const std::vector<Tile>& tiles, int columns, int scale = 3, const std::string& title = "");

}  // namespace lethe::report
