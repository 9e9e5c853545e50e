#include "report/font.h"

#include <algorithm>
#include <array>
#include <string>

#include "util/error.h"

namespace lethe::report {
namespace {

// The glyphs as sheets a person can read and edit: each block lists its characters, then the
// 9 rows of their bitmaps side by side, 5 columns per glyph and one blank column between.
struct GlyphSheet {
  const char* characters;
  std::array<const char*, kGlyphHeight> rows;
};

const GlyphSheet kSheets[] = {
    {"ABCDEFGHIJKL",
     {".###. ####. .###. ####. ##### ##### .###. #...# .###. ..### #...# #....",
     "#...# #...# #...# #...# #.... #.... #...# #...# ..#.. ...#. #..#. #....",
     "#...# #...# #.... #...# #.... #.... #.... #...# ..#.. ...#. #.#.. #....",
     "##### ####. #.... #...# ####. ####. #.### ##### ..#.. ...#. ##... #....",
     "#...# #...# #.... #...# #.... #.... #...# #...# ..#.. ...#. #.#.. #....",
     "#...# #...# #...# #...# #.... #.... #...# #...# ..#.. #..#. #..#. #....",
     "#...# ####. .###. ####. ##### #.... .###. #...# .###. .##.. #...# #####",
     "..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....",
     "..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ....."}},
    {"MNOPQRSTUVWX",
     {"#...# #...# .###. ####. .###. ####. .#### ##### #...# #...# #...# #...#",
     "##.## #...# #...# #...# #...# #...# #.... ..#.. #...# #...# #...# #...#",
     "#.#.# ##..# #...# #...# #...# #...# #.... ..#.. #...# #...# #...# .#.#.",
     "#.#.# #.#.# #...# ####. #...# ####. .###. ..#.. #...# #...# #.#.# ..#..",
     "#...# #..## #...# #.... #.#.# #.#.. ....# ..#.. #...# #...# #.#.# .#.#.",
     "#...# #...# #...# #.... #..#. #..#. ....# ..#.. #...# .#.#. #.#.# #...#",
     "#...# #...# .###. #.... .##.# #...# ####. ..#.. .###. ..#.. .#.#. #...#",
     "..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....",
     "..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ....."}},
    {"YZ0123456789",
     {"#...# ##### .###. ..#.. .###. ####. ...#. ##### ..##. ##### .###. .###.",
     "#...# ....# #...# .##.. #...# ....# ..##. #.... .#... ....# #...# #...#",
     ".#.#. ...#. #..## ..#.. ....# ....# .#.#. ####. #.... ...#. #...# #...#",
     "..#.. ..#.. #.#.# ..#.. ...#. .###. #..#. ....# ####. ..#.. .###. .####",
     "..#.. .#... ##..# ..#.. ..#.. ....# ##### ....# #...# .#... #...# ....#",
     "..#.. #.... #...# ..#.. .#... ....# ...#. #...# #...# .#... #...# ...#.",
     "..#.. ##### .###. .###. ##### ####. ...#. .###. .###. .#... .###. .##..",
     "..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....",
     "..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ....."}},
    {"abcdefghijkl",
     {"..... #.... ..... ....# ..... ..##. ..... #.... ..#.. ...#. #.... .##..",
     "..... #.... ..... ....# ..... .#..# ..... #.... ..... ..... #.... ..#..",
     ".###. ####. .###. .#### .###. .#... .#### #.##. .##.. ..##. #..#. ..#..",
     "....# #...# #.... #...# #...# ###.. #...# ##..# ..#.. ...#. #.#.. ..#..",
     ".#### #...# #.... #...# ##### .#... #...# #...# ..#.. ...#. ##... ..#..",
     "#...# #...# #...# #...# #.... .#... #...# #...# ..#.. ...#. #.#.. ..#..",
     ".#### ####. .###. .#### .###. .#... .#### #...# .###. ...#. #..#. .###.",
     "..... ..... ..... ..... ..... ..... ....# ..... ..... #..#. ..... .....",
     "..... ..... ..... ..... ..... ..... .###. ..... ..... .##.. ..... ....."}},
    {"mnopqrstuvwx",
     {"..... ..... ..... ..... ..... ..... ..... .#... ..... ..... ..... .....",
     "..... ..... ..... ..... ..... ..... ..... .#... ..... ..... ..... .....",
     "##.#. #.##. .###. ####. .#### #.##. .#### ###.. #...# #...# #...# #...#",
     "#.#.# ##..# #...# #...# #...# ##..# #.... .#... #...# #...# #...# .#.#.",
     "#.#.# #...# #...# #...# #...# #.... .###. .#... #...# #...# #.#.# ..#..",
     "#.#.# #...# #...# #...# #...# #.... ....# .#..# #..## .#.#. #.#.# .#.#.",
     "#.#.# #...# .###. ####. .#### #.... ####. ..##. .##.# ..#.. .#.#. #...#",
     "..... ..... ..... #.... ....# ..... ..... ..... ..... ..... ..... .....",
     "..... ..... ..... #.... ....# ..... ..... ..... ..... ..... ..... ....."}},
    {"yz .,:;=#-+/",
     {"..... ..... ..... ..... ..... ..... ..... ..... .#.#. ..... ..... .....",
     "..... ..... ..... ..... ..... .##.. .##.. ..... .#.#. ..... ..#.. ....#",
     "#...# ##### ..... ..... ..... .##.. .##.. ##### ##### ..... ..#.. ...#.",
     "#...# ...#. ..... ..... ..... ..... ..... ..... .#.#. ##### ##### ..#..",
     "#...# ..#.. ..... ..... ..... .##.. .##.. ##### ##### ..... ..#.. .#...",
     "#...# .#... ..... .##.. .##.. .##.. .##.. ..... .#.#. ..... ..#.. #....",
     ".#### ##### ..... .##.. .##.. ..... ..#.. ..... .#.#. ..... ..... .....",
     "....# ..... ..... ..... ..#.. ..... .#... ..... ..... ..... ..... .....",
     ".###. ..... ..... ..... .#... ..... ..... ..... ..... ..... ..... ....."}},
    {"()%[]_!?<>'\"",
     {"...#. .#... ##... .###. .###. ..... ..#.. .###. ...#. .#... ..#.. .#.#.",
     "..#.. ..#.. ##..# .#... ...#. ..... ..#.. #...# ..#.. ..#.. ..#.. .#.#.",
     ".#... ...#. ...#. .#... ...#. ..... ..#.. ....# .#... ...#. .#... .....",
     ".#... ...#. ..#.. .#... ...#. ..... ..#.. ...#. #.... ....# ..... .....",
     ".#... ...#. .#... .#... ...#. ..... ..#.. ..#.. .#... ...#. ..... .....",
     "..#.. ..#.. #..## .#... ...#. ..... ..... ..... ..#.. ..#.. ..... .....",
     "...#. .#... ...## .###. .###. ..... ..#.. ..#.. ...#. .#... ..... .....",
     "..... ..... ..... ..... ..... ##### ..... ..... ..... ..... ..... .....",
     "..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ....."}},
    {"*",
     {".....",
     "#.#.#",
     ".###.",
     "#####",
     ".###.",
     "#.#.#",
     ".....",
     ".....",
     "....."}},
};

// One row bitmap per glyph row, bit (kGlyphWidth - 1 - column) set where the pixel is ink.
using GlyphRows = std::array<uint8_t, kGlyphHeight>;

struct GlyphTable {
  std::array<GlyphRows, 128> rows{};
  std::array<bool, 128> present{};
};

GlyphTable parse_sheets() {
  GlyphTable table;
  for (const GlyphSheet& sheet : kSheets) {
    const std::string_view chars(sheet.characters);
    for (size_t row = 0; row < kGlyphHeight; ++row) {
      const std::string_view line(sheet.rows[row]);
      LETHE_CHECK(line.size() == chars.size() * kGlyphAdvance - 1, "font sheet '{}' row {} has {} columns", chars, row,
                  line.size());
      for (size_t k = 0; k < chars.size(); ++k) {
        uint8_t bits = 0;
        for (int col = 0; col < kGlyphWidth; ++col) {
          const char pixel = line[k * kGlyphAdvance + static_cast<size_t>(col)];
          LETHE_CHECK(pixel == '#' || pixel == '.', "font sheet '{}' row {} has '{}'", chars, row, pixel);
          if (pixel == '#') bits |= static_cast<uint8_t>(1u << (kGlyphWidth - 1 - col));
        }
        const auto code = static_cast<unsigned char>(chars[k]);
        table.rows[code][row] = bits;
        table.present[code] = true;
      }
    }
  }
  return table;
}

const GlyphTable& glyphs() {
  static const GlyphTable table = parse_sheets();
  return table;
}

// A UTF-8 continuation byte belongs to the character before it: one box per character.
bool is_continuation_byte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// The missing-glyph box covers the capital height: an outline of 5x7.
GlyphRows missing_glyph_box() {
  GlyphRows rows{};
  constexpr int kCapHeight = 7;
  for (int row = 0; row < kCapHeight; ++row) rows[row] = (row == 0 || row == kCapHeight - 1) ? 0b11111 : 0b10001;
  return rows;
}

void check_scale(int scale) {
  if (scale < 1) fail("text scale {} must be at least 1", scale);
}

}  // namespace

bool has_glyph(char c) {
  const auto code = static_cast<unsigned char>(c);
  return code < 128 && glyphs().present[code];
}

void draw_text(Image& image, int x, int y, std::string_view text, uint8_t r, uint8_t g, uint8_t b, int scale) {
  check_scale(scale);
  static const GlyphRows box = missing_glyph_box();
  int pen_x = x, pen_y = y;
  for (char c : text) {
    if (c == '\n') {
      pen_x = x;
      pen_y += kLineAdvance * scale;
      continue;
    }
    if (is_continuation_byte(c)) continue;
    const GlyphRows& rows = has_glyph(c) ? glyphs().rows[static_cast<unsigned char>(c)] : box;
    for (int row = 0; row < kGlyphHeight; ++row)
      for (int col = 0; col < kGlyphWidth; ++col)
        if (rows[row] & (1u << (kGlyphWidth - 1 - col)))
          image.fill_rect(pen_x + col * scale, pen_y + row * scale, scale, scale, r, g, b);
    pen_x += kGlyphAdvance * scale;
  }
}

int text_width(std::string_view text, int scale) {
  check_scale(scale);
  int widest = 0, glyphs_in_line = 0;
  for (char c : text) {
    if (c == '\n') {
      glyphs_in_line = 0;
    } else if (!is_continuation_byte(c)) {
      ++glyphs_in_line;
      widest = std::max(widest, glyphs_in_line);
    }
  }
  return widest == 0 ? 0 : (widest * kGlyphAdvance - (kGlyphAdvance - kGlyphWidth)) * scale;
}

int text_height(std::string_view text, int scale) {
  check_scale(scale);
  if (text.empty()) return 0;
  int lines = 1;
  for (char c : text) lines += c == '\n';
  return ((lines - 1) * kLineAdvance + kGlyphHeight) * scale;
}

}  // namespace lethe::report
