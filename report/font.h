#pragma once
// A built-in bitmap font, so figures carry their own captions without a font library. Each
// glyph is 5x9 pixels: capitals and digits fill the top 7 rows, descenders (g j p q y , ; _)
// use the last two. Glyphs advance by 6 pixels, lines by 10 (times `scale`).
#include <cstdint>
#include <string_view>

#include "report/image.h"

namespace lethe::report {

inline constexpr int kGlyphWidth = 5;
inline constexpr int kGlyphHeight = 9;
inline constexpr int kGlyphAdvance = 6;
inline constexpr int kLineAdvance = 10;

// True when `c` has its own glyph; any other character (and each UTF-8 sequence) is drawn as
// an outlined box, so a missing glyph is visible rather than silently dropped.
bool has_glyph(char c);

// Draws `text` with its top-left corner at (x, y); '\n' starts a new line. `scale` >= 1
// magnifies every font pixel to a scale x scale square. Pixels outside the image are clipped.
void draw_text(Image& image, int x, int y, std::string_view text, uint8_t r, uint8_t g, uint8_t b, int scale = 1);

// The box draw_text can touch: the widest line's width and all lines' height, in pixels; the
// gap after the last glyph and below the last line is not included. Empty text measures 0 x 0.
int text_width(std::string_view text, int scale = 1);
int text_height(std::string_view text, int scale = 1);

}  // namespace lethe::report
