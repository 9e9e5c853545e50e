#include "report/image.h"

#include <algorithm>
#include <limits>

#include "util/atomic_file.h"
#include "util/error.h"

// The writer's functions are made static to this file so that another part of the program
// embedding stb_image_write cannot collide with them at link time.
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace lethe::report {
namespace {

// stb takes the row stride as an int, so a row must stay below 2^31 bytes; the whole raster is
// held to 1 GiB, far above any report figure, so that a bad layout fails instead of swapping.
constexpr int64_t kMaxImageBytes = int64_t{1} << 30;

}  // namespace

Image::Image(int w, int h, uint8_t r, uint8_t g, uint8_t b) {
  if (w < 0 || h < 0) fail("image size {}x{} is negative", w, h);
  const int64_t bytes = int64_t{w} * int64_t{h} * 3;
  if (bytes > kMaxImageBytes) fail("image size {}x{} is too large ({} bytes, limit {})", w, h, bytes, kMaxImageBytes);
  width = w;
  height = h;
  rgb.resize(static_cast<size_t>(bytes));
  fill(r, g, b);
}

void Image::fill(uint8_t r, uint8_t g, uint8_t b) {
  for (size_t i = 0; i + 2 < rgb.size(); i += 3) {
    rgb[i] = r;
    rgb[i + 1] = g;
    rgb[i + 2] = b;
  }
}

void Image::set(int x, int y, uint8_t r, uint8_t g, uint8_t b) {
  if (!contains(x, y)) return;
  uint8_t* p = rgb.data() + (static_cast<size_t>(y) * width + x) * 3;
  p[0] = r;
  p[1] = g;
  p[2] = b;
}

void Image::fill_rect(int x, int y, int w, int h, uint8_t r, uint8_t g, uint8_t b) {
  // Clip in 64 bits: x + w may pass INT_MAX for a caller's "to the edge" rectangle.
  const int64_t x0 = std::max<int64_t>(x, 0), y0 = std::max<int64_t>(y, 0);
  const int64_t x1 = std::min<int64_t>(int64_t{x} + w, width), y1 = std::min<int64_t>(int64_t{y} + h, height);
  for (int64_t yy = y0; yy < y1; ++yy)
    for (int64_t xx = x0; xx < x1; ++xx) set(static_cast<int>(xx), static_cast<int>(yy), r, g, b);
}

void Image::frame_rect(int x, int y, int w, int h, int thickness, uint8_t r, uint8_t g, uint8_t b) {
  if (w <= 0 || h <= 0 || thickness <= 0) return;
  const int t = std::min({thickness, (w + 1) / 2, (h + 1) / 2});
  fill_rect(x, y, w, t, r, g, b);
  fill_rect(x, y + h - t, w, t, r, g, b);
  fill_rect(x, y + t, t, h - 2 * t, r, g, b);
  fill_rect(x + w - t, y + t, t, h - 2 * t, r, g, b);
}

std::string encode_png(const Image& image) {
  if (image.width <= 0 || image.height <= 0) fail("cannot encode an empty {}x{} image as PNG", image.width, image.height);
  if (image.rgb.size() != static_cast<size_t>(image.width) * static_cast<size_t>(image.height) * 3)
    fail("image {}x{} holds {} bytes, expected {}", image.width, image.height, image.rgb.size(),
         static_cast<size_t>(image.width) * static_cast<size_t>(image.height) * 3);
  std::string png;
  auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<size_t>(size));
  };
  const int ok = stbi_write_png_to_func(append, &png, image.width, image.height, 3, image.rgb.data(), image.width * 3);
  if (!ok || png.empty()) fail("PNG encoding of a {}x{} image failed", image.width, image.height);
  return png;
}

void write_png(const std::string& path, const Image& image) { write_file_atomic(path, encode_png(image)); }

}  // namespace lethe::report
