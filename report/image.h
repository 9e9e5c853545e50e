#pragma once
// An 8-bit RGB raster that the report figures are drawn into, and its PNG encoding. Drawing
// outside the raster is clipped silently, so callers can place text and borders near an edge
// without bounds arithmetic of their own.
#include <cstdint>
#include <string>
#include <vector>

namespace lethe::report {

struct Rgb {
  uint8_t r, g, b;
};

struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // row-major, 3 bytes per pixel, top row first

  Image() = default;
  // A width x height raster filled with one colour (white unless told); throws an Error for
  // negative sizes or a raster too large to address.
  Image(int width, int height, uint8_t r = 255, uint8_t g = 255, uint8_t b = 255);

  void fill(uint8_t r, uint8_t g, uint8_t b);
  void set(int x, int y, uint8_t r, uint8_t g, uint8_t b);  // no-op outside the raster
  void fill_rect(int x, int y, int w, int h, uint8_t r, uint8_t g, uint8_t b);  // clipped
  // A frame `thickness` pixels wide whose outer edge is the rectangle (x, y, w, h).
  void frame_rect(int x, int y, int w, int h, int thickness, uint8_t r, uint8_t g, uint8_t b);

  bool contains(int x, int y) const { return x >= 0 && y >= 0 && x < width && y < height; }
  // The pixel's first byte; the caller keeps (x, y) inside.
  const uint8_t* at(int x, int y) const { return rgb.data() + (static_cast<size_t>(y) * width + x) * 3; }
};

// PNG bytes of the image (8-bit RGB); throws an Error for an empty image.
std::string encode_png(const Image& image);

// Encodes and writes atomically: the file at `path` is the whole PNG or is left as it was.
void write_png(const std::string& path, const Image& image);

}  // namespace lethe::report
