#include "report/grid.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "report/font.h"
#include "util/error.h"

namespace lethe::report {
namespace {

// A magnified tile side beyond this is a caller's mistake (a whole dataset passed as one tile,
// a wrong scale); refusing it keeps every later sum of sides inside an int.
constexpr int64_t kMaxTileSide = 1 << 15;

void check_tile(const Tile& tile, size_t index, int scale) {
  if (tile.channels != 1 && tile.channels != 3)
    fail("grid tile {} has {} channels; only 1 (grayscale) or 3 (RGB) can be drawn", index, tile.channels);
  if (tile.height < 1 || tile.width < 1) fail("grid tile {} has size {}x{}", index, tile.height, tile.width);
  if (!tile.pixels) fail("grid tile {} has no pixels", index);
  if (int64_t{tile.height} * scale > kMaxTileSide || int64_t{tile.width} * scale > kMaxTileSide)
    fail("grid tile {} of {}x{} at scale {} is larger than {} pixels a side", index, tile.height, tile.width, scale,
         kMaxTileSide);
}

// Maps the tile's finite range onto 0..255; NaN-free by construction of `lo` and `hi`.
struct Normaliser {
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();

  explicit Normaliser(const Tile& tile) {
    const size_t count = static_cast<size_t>(tile.channels) * tile.height * tile.width;
    for (size_t i = 0; i < count; ++i) {
      const double v = tile.pixels[i];
      if (!std::isfinite(v)) continue;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }

  uint8_t operator()(double v) const {
    if (!(hi > lo)) return 128;  // flat (or entirely non-finite) tile: no contrast to show
    const double unit = (v - lo) / (hi - lo);
    return static_cast<uint8_t>(std::lround(std::clamp(unit, 0.0, 1.0) * 255.0));
  }
};

void draw_tile(Image& image, const Tile& tile, int left, int top, int scale) {
  const Normaliser normalise(tile);
  const size_t plane = static_cast<size_t>(tile.height) * tile.width;
  for (int y = 0; y < tile.height; ++y) {
    for (int x = 0; x < tile.width; ++x) {
      const size_t at = static_cast<size_t>(y) * tile.width + x;
      Rgb colour{};
      bool finite = true;
      uint8_t channel_value[3];
      for (int c = 0; c < tile.channels; ++c) {
        const double v = tile.pixels[c * plane + at];
        finite = finite && std::isfinite(v);
        channel_value[c] = normalise(v);
      }
      if (!finite)
        colour = kNonFiniteColor;
      else if (tile.channels == 1)
        colour = {channel_value[0], channel_value[0], channel_value[0]};
      else
        colour = {channel_value[0], channel_value[1], channel_value[2]};
      image.fill_rect(left + x * scale, top + y * scale, scale, scale, colour.r, colour.g, colour.b);
    }
  }
}

int widest_tile(const std::vector<Tile>& tiles) {
  int w = 0;
  for (const Tile& t : tiles) w = std::max(w, t.width);
  return w;
}

int tallest_tile(const std::vector<Tile>& tiles) {
  int h = 0;
  for (const Tile& t : tiles) h = std::max(h, t.height);
  return h;
}

}  // namespace

int GridLayout::cell_x(int index) const { return kGridPadding + (index % columns) * (cell_width + kGridPadding); }

int GridLayout::cell_y(int index) const {
  return title_height + kGridPadding + (index / columns) * (cell_height + kGridPadding);
}

GridLayout layout_grid(const std::vector<Tile>& tiles, int columns, int scale, const std::string& title) {
  if (columns < 1) fail("grid columns {} must be at least 1", columns);
  if (scale < 1) fail("grid scale {} must be at least 1", scale);
  for (size_t i = 0; i < tiles.size(); ++i) check_tile(tiles[i], i, scale);

  GridLayout layout;
  const int count = static_cast<int>(std::min<size_t>(tiles.size(), std::numeric_limits<int>::max()));
  layout.columns = std::min(columns, std::max(count, 1));
  layout.rows = (count + layout.columns - 1) / layout.columns;

  int caption_width = 0, caption_height = 0;
  for (const Tile& t : tiles) {
    caption_width = std::max(caption_width, text_width(t.caption));
    caption_height = std::max(caption_height, text_height(t.caption));
  }
  layout.cell_width = std::max(widest_tile(tiles) * scale, caption_width);
  layout.cell_height = tallest_tile(tiles) * scale + (caption_height > 0 ? kCaptionGap + caption_height : 0);
  layout.title_height = title.empty() ? 0 : kGridPadding + text_height(title, kTitleScale);

  const int64_t grid_width = kGridPadding + int64_t{count > 0 ? layout.columns : 0} * (layout.cell_width + kGridPadding);
  const int64_t title_width = title.empty() ? 0 : 2 * kGridPadding + int64_t{text_width(title, kTitleScale)};
  const int64_t width = std::max(grid_width, title_width);
  const int64_t height = layout.title_height + kGridPadding + int64_t{layout.rows} * (layout.cell_height + kGridPadding);
  if (width > std::numeric_limits<int>::max() || height > std::numeric_limits<int>::max())
    fail("grid of {} tiles in {} columns would be {}x{} pixels", tiles.size(), columns, width, height);
  layout.width = static_cast<int>(width);
  layout.height = static_cast<int>(height);
  return layout;
}

Image image_grid(const std::vector<Tile>& tiles, int columns, int scale, const std::string& title) {
  const GridLayout layout = layout_grid(tiles, columns, scale, title);
  Image image(layout.width, layout.height);
  if (!title.empty()) draw_text(image, kGridPadding, kGridPadding, title, 0, 0, 0, kTitleScale);

  const int tallest = tallest_tile(tiles) * scale;
  for (size_t i = 0; i < tiles.size(); ++i) {
    const Tile& tile = tiles[i];
    const int index = static_cast<int>(i);
    const int tile_w = tile.width * scale, tile_h = tile.height * scale;
    const int left = layout.cell_x(index) + (layout.cell_width - tile_w) / 2;
    const int top = layout.cell_y(index);
    draw_tile(image, tile, left, top, scale);
    const Rgb ink = tile.highlight ? kHighlightColor : Rgb{0, 0, 0};
    if (tile.highlight)
      image.frame_rect(left - kHighlightBorder, top - kHighlightBorder, tile_w + 2 * kHighlightBorder,
                       tile_h + 2 * kHighlightBorder, kHighlightBorder, ink.r, ink.g, ink.b);
    if (!tile.caption.empty()) {
      const int caption_left = layout.cell_x(index) + (layout.cell_width - text_width(tile.caption)) / 2;
      draw_text(image, caption_left, top + tallest + kCaptionGap, tile.caption, ink.r, ink.g, ink.b);
    }
  }
  return image;
}

}  // namespace lethe::report
