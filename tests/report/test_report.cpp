// Report figures: PNG bytes that decode back to the same pixels, grids whose geometry follows the
// documented layout, text that stays inside its measured box, and SVG charts that are
// well-formed XML with escaped text and round tick labels.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "datasets/idx_fixture.h"
#include "report/font.h"
#include "report/grid.h"
#include "report/image.h"
#include "report/svg.h"
#include "util/atomic_file.h"
#include "util/error.h"

// The decoder is needed only here; static keeps its symbols out of everyone else's way.
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

namespace lethe::report {
namespace {

namespace fs = std::filesystem;
using data::fixture::TempDir;

bool pixel_is(const Image& image, int x, int y, Rgb c) {
  const uint8_t* p = image.at(x, y);
  return p[0] == c.r && p[1] == c.g && p[2] == c.b;
}

constexpr Rgb kWhite{255, 255, 255};

// ---- PNG ----

Image gradient_image(int width, int height) {
  Image image(width, height);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      image.set(x, y, static_cast<uint8_t>(x * 31), static_cast<uint8_t>(y * 47), static_cast<uint8_t>(x * 7 + y * 13));
  return image;
}

TEST(ReportPng, EncodedBytesDecodeToTheSamePixels) {
  const Image image = gradient_image(7, 5);
  const std::string png = encode_png(image);
  ASSERT_GE(png.size(), 8u);
  EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));

  int width = 0, height = 0, channels = 0;
  stbi_uc* decoded = stbi_load_from_memory(reinterpret_cast<const stbi_uc*>(png.data()), static_cast<int>(png.size()),
                                           &width, &height, &channels, 3);
  ASSERT_NE(decoded, nullptr) << stbi_failure_reason();
  EXPECT_EQ(width, 7);
  EXPECT_EQ(height, 5);
  EXPECT_EQ(channels, 3);
  const std::vector<uint8_t> pixels(decoded, decoded + width * height * 3);
  stbi_image_free(decoded);
  EXPECT_EQ(pixels, image.rgb);
}

TEST(ReportPng, EmptyOrInconsistentImagesAreRefused) {
  EXPECT_THROW(encode_png(Image()), Error);
  EXPECT_THROW(encode_png(Image(0, 4)), Error);
  Image truncated(3, 3);
  truncated.rgb.pop_back();
  EXPECT_THROW(encode_png(truncated), Error);
  EXPECT_THROW(Image(-1, 2), Error);
  EXPECT_THROW(Image(1 << 16, 1 << 16), Error);  // 12 GiB: a layout bug, not a figure
}

TEST(ReportPng, WritePngStoresExactlyTheEncoding) {
  TempDir dir;
  const Image image = gradient_image(4, 3);
  write_png(dir.file("figure.png"), image);
  EXPECT_EQ(read_file(dir.file("figure.png")), encode_png(image));
}

TEST(ReportPng, WriteIntoAMissingFolderThrowsAndLeavesNothing) {
  TempDir dir;
  const std::string target = dir.file("no-such-folder/figure.png");
  EXPECT_THROW(write_png(target, gradient_image(2, 2)), Error);
  EXPECT_FALSE(fs::exists(dir.file("no-such-folder")));
  EXPECT_TRUE(fs::is_empty(dir.str())) << "a temporary or partial file was left behind";
}

TEST(ReportPng, AFailedEncodeKeepsTheExistingFile) {
  TempDir dir;
  write_file_atomic(dir.file("figure.png"), "previous");
  EXPECT_THROW(write_png(dir.file("figure.png"), Image()), Error);
  EXPECT_EQ(read_file(dir.file("figure.png")), "previous");
}

// ---- image primitives ----

TEST(ReportImage, DrawingOutsideTheRasterIsClipped) {
  Image image(4, 3);
  image.set(-1, 0, 0, 0, 0);
  image.set(4, 0, 0, 0, 0);
  image.set(0, 3, 0, 0, 0);
  image.fill_rect(-10, -10, 12, 11, 9, 9, 9);  // covers only (0,0) and (1,0)
  image.fill_rect(2, 1, std::numeric_limits<int>::max(), 1, 7, 7, 7);
  int changed = 0;
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 4; ++x) changed += !pixel_is(image, x, y, kWhite);
  EXPECT_EQ(changed, 4);
  EXPECT_TRUE(pixel_is(image, 1, 0, {9, 9, 9}));
  EXPECT_TRUE(pixel_is(image, 3, 1, {7, 7, 7}));
  EXPECT_TRUE(pixel_is(image, 2, 0, kWhite));
}

// ---- font ----

// The smallest rectangle holding every non-white pixel, as x0, y0, x1, y1 (exclusive); x0 ==
// -1 when the image is blank.
struct InkBox {
  int x0 = -1, y0 = -1, x1 = -1, y1 = -1;
};

InkBox ink_box(const Image& image) {
  InkBox box;
  for (int y = 0; y < image.height; ++y)
    for (int x = 0; x < image.width; ++x) {
      if (pixel_is(image, x, y, kWhite)) continue;
      if (box.x0 < 0) box = {x, y, x + 1, y + 1};
      box.x0 = std::min(box.x0, x), box.y0 = std::min(box.y0, y);
      box.x1 = std::max(box.x1, x + 1), box.y1 = std::max(box.y1, y + 1);
    }
  return box;
}

const std::string kRequiredCharacters =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz .,:;=#-+/()%[]_!?<>'\"";

TEST(ReportFont, EveryRequiredCharacterHasItsOwnGlyph) {
  std::set<std::string> renderings;  // each glyph's pixels as bytes
  for (char c : kRequiredCharacters) {
    EXPECT_TRUE(has_glyph(c)) << "no glyph for '" << c << "'";
    Image image(kGlyphWidth, kGlyphHeight);
    draw_text(image, 0, 0, std::string(1, c), 0, 0, 0);
    const bool blank = ink_box(image).x0 < 0;
    EXPECT_EQ(blank, c == ' ') << "'" << c << "'";
    renderings.insert(std::string(image.rgb.begin(), image.rgb.end()));
  }
  // A copy-paste slip in the glyph sheets would show up as two characters drawn the same.
  EXPECT_EQ(renderings.size(), kRequiredCharacters.size());
}

TEST(ReportFont, TextInksOnlyInsideItsMeasuredBox) {
  // "Hg" reaches the box's left (H), right (g's last column), top (H) and bottom (g's
  // descender) edges, so the ink box must equal the measured box exactly.
  for (int scale : {1, 2, 3}) {
    Image image(60, 50);
    const int x = 7, y = 5;
    draw_text(image, x, y, "Hg", 0, 0, 0, scale);
    EXPECT_EQ(text_width("Hg", scale), (2 * kGlyphAdvance - 1) * scale);
    EXPECT_EQ(text_height("Hg", scale), kGlyphHeight * scale);
    const InkBox box = ink_box(image);
    EXPECT_EQ(box.x0, x) << "scale " << scale;
    EXPECT_EQ(box.y0, y) << "scale " << scale;
    EXPECT_EQ(box.x1, x + text_width("Hg", scale)) << "scale " << scale;
    EXPECT_EQ(box.y1, y + text_height("Hg", scale)) << "scale " << scale;
  }
}

TEST(ReportFont, AGlyphLandsOnItsOwnRows) {
  Image image(10, 12);
  draw_text(image, 2, 1, "-", 10, 20, 30);
  for (int y = 0; y < image.height; ++y)
    for (int x = 0; x < image.width; ++x) {
      const bool on_bar = y == 1 + 3 && x >= 2 && x < 2 + kGlyphWidth;
      EXPECT_EQ(pixel_is(image, x, y, {10, 20, 30}), on_bar) << "(" << x << ", " << y << ")";
    }
}

TEST(ReportFont, MultilineTextStacksLines) {
  EXPECT_EQ(text_width("ab\nlonger", 1), 6 * kGlyphAdvance - 1);
  EXPECT_EQ(text_height("ab\nlonger", 2), (kLineAdvance + kGlyphHeight) * 2);
  Image image(40, 30);
  draw_text(image, 0, 0, "I\nI", 0, 0, 0);
  EXPECT_FALSE(pixel_is(image, 2, kLineAdvance + 3, kWhite)) << "second line not drawn below the first";
  EXPECT_TRUE(pixel_is(image, kGlyphAdvance + 2, 3, kWhite)) << "second line drawn beside the first";
}

TEST(ReportFont, UnknownCharactersDrawABoxOncePerCharacter) {
  EXPECT_FALSE(has_glyph('@'));
  Image image(8, 10);
  draw_text(image, 1, 1, "@", 0, 0, 0);
  EXPECT_FALSE(pixel_is(image, 1, 1, kWhite));      // top-left corner
  EXPECT_FALSE(pixel_is(image, 5, 7, kWhite));      // bottom-right corner of the 5x7 outline
  EXPECT_TRUE(pixel_is(image, 3, 4, kWhite));       // hollow inside
  EXPECT_EQ(text_width("\xc3\xa9", 1), kGlyphWidth);  // "é": two bytes, one box
  Image accented(8, 10);
  draw_text(accented, 1, 1, "\xc3\xa9", 0, 0, 0);
  EXPECT_EQ(accented.rgb, image.rgb);
}

TEST(ReportFont, TextAtTheEdgesIsClippedAndBadScalesRefused) {
  Image image(20, 12);
  draw_text(image, -4, -6, "W", 0, 0, 0, 2);
  draw_text(image, 17, 9, "W", 0, 0, 0, 2);
  EXPECT_FALSE(pixel_is(image, 0, 0, kWhite));
  EXPECT_THROW(draw_text(image, 0, 0, "x", 0, 0, 0, 0), Error);
}

// ---- grid ----

struct TileData {
  std::vector<float> pixels;
  int channels, height, width;
};

TileData ramp(int channels, int height, int width) {
  TileData t{{}, channels, height, width};
  for (int i = 0; i < channels * height * width; ++i) t.pixels.push_back(static_cast<float>(i) * 0.1f - 3.0f);
  return t;
}

Tile tile_of(const TileData& data, std::string caption = "", bool highlight = false) {
  return {data.pixels.data(), data.channels, data.height, data.width, std::move(caption), highlight};
}

TEST(ReportGrid, SizeFollowsTheDocumentedLayout) {
  const TileData data = ramp(1, 4, 6);  // 4 high, 6 wide
  std::vector<Tile> tiles;
  for (int i = 0; i < 5; ++i) tiles.push_back(tile_of(data, "#1 y=7"));

  // Cell: the caption (6 glyphs: 6*6-1 = 35 px) is wider than the tile (6*2 = 12 px); height is
  // the tile (4*2 = 8) + gap 3 + glyph height 9 = 20. Five tiles in 3 columns make 2 rows.
  const Image captioned = image_grid(tiles, 3, 2, "");
  EXPECT_EQ(captioned.width, 6 + 3 * (35 + 6));
  EXPECT_EQ(captioned.height, 6 + 2 * (20 + 6));

  // A title adds padding 6 + glyph height 9 at scale 2.
  const Image titled = image_grid(tiles, 3, 2, "T");
  EXPECT_EQ(titled.width, captioned.width);
  EXPECT_EQ(titled.height, captioned.height + 6 + 18);

  for (Tile& t : tiles) t.caption.clear();
  const Image bare = image_grid(tiles, 3, 2, "");
  EXPECT_EQ(bare.width, 6 + 3 * (12 + 6));
  EXPECT_EQ(bare.height, 6 + 2 * (8 + 6));

  // Fewer tiles than columns: only the used columns take room.
  tiles.resize(2);
  const Image narrow = image_grid(tiles, 5, 3, "");
  EXPECT_EQ(narrow.width, 6 + 2 * (18 + 6));
  EXPECT_EQ(narrow.height, 6 + 1 * (12 + 6));

  // A long title widens the image beyond the grid.
  const Image wide_title = image_grid(tiles, 5, 3, "a long title");
  EXPECT_EQ(wide_title.width, 2 * 6 + (12 * 6 - 1) * 2);

  const GridLayout layout = layout_grid(tiles, 5, 3, "");
  EXPECT_EQ(layout.width, narrow.width);
  EXPECT_EQ(layout.cell_x(1), 6 + 18 + 6);
}

TEST(ReportGrid, HighlightedTilesGetARedFrameOutsideThePixels) {
  const TileData data = ramp(1, 3, 3);
  for (bool highlight : {false, true}) {
    // One 3x3 tile at scale 2: the tile covers [6, 12) both ways; the frame is [4, 14) wide, 2 thick.
    const Image image = image_grid({tile_of(data, "", highlight)}, 1, 2, "");
    ASSERT_EQ(image.width, 18);
    ASSERT_EQ(image.height, 18);
    for (auto [x, y] : std::vector<std::pair<int, int>>{{4, 4}, {5, 5}, {13, 13}, {12, 12}, {4, 9}, {13, 9}, {9, 4}, {9, 13}})
      EXPECT_EQ(pixel_is(image, x, y, kHighlightColor), highlight) << "(" << x << ", " << y << ")";
    for (auto [x, y] : std::vector<std::pair<int, int>>{{3, 3}, {14, 14}, {3, 9}, {9, 14}})
      EXPECT_TRUE(pixel_is(image, x, y, kWhite)) << "(" << x << ", " << y << ")";
    // The tile's own pixels are not painted over: its first pixel is the minimum, black.
    EXPECT_TRUE(pixel_is(image, 6, 6, {0, 0, 0}));
    EXPECT_TRUE(pixel_is(image, 11, 11, {255, 255, 255}));
  }
}

TEST(ReportGrid, TilesAreMinMaxNormalisedAndUpscaled) {
  // Grayscale 1x3 with an arbitrary range: -2 -> 0, 1 -> 128 (127.5 rounds up), 4 -> 255.
  const std::vector<float> gray = {-2.0f, 1.0f, 4.0f};
  Image image = image_grid({{gray.data(), 1, 1, 3, "", false}}, 1, 2, "");
  // Tile at (6, 6), each source pixel a 2x2 block.
  for (int dy = 0; dy < 2; ++dy)
    for (int dx = 0; dx < 2; ++dx) {
      EXPECT_TRUE(pixel_is(image, 6 + dx, 6 + dy, {0, 0, 0}));
      EXPECT_TRUE(pixel_is(image, 8 + dx, 6 + dy, {128, 128, 128}));
      EXPECT_TRUE(pixel_is(image, 10 + dx, 6 + dy, {255, 255, 255}));
    }

  // RGB planes share one range, so colour balance survives: planes R {0, 10}, G {10, 0}, B {5, 5}.
  const std::vector<float> rgb = {0, 10, 10, 0, 5, 5};
  image = image_grid({{rgb.data(), 3, 1, 2, "", false}}, 1, 1, "");
  EXPECT_TRUE(pixel_is(image, 6, 6, {0, 255, 128}));
  EXPECT_TRUE(pixel_is(image, 7, 6, {255, 0, 128}));

  // Non-finite values are flagged, not allowed to flatten the rest; a flat tile is mid-grey.
  const std::vector<float> with_nan = {0, NAN, 1, INFINITY};
  image = image_grid({{with_nan.data(), 1, 1, 4, "", false}}, 1, 1, "");
  EXPECT_TRUE(pixel_is(image, 6, 6, {0, 0, 0}));
  EXPECT_TRUE(pixel_is(image, 7, 6, kNonFiniteColor));
  EXPECT_TRUE(pixel_is(image, 8, 6, {255, 255, 255}));
  EXPECT_TRUE(pixel_is(image, 9, 6, kNonFiniteColor));
  const std::vector<float> flat = {3, 3};
  image = image_grid({{flat.data(), 1, 1, 2, "", false}}, 1, 1, "");
  EXPECT_TRUE(pixel_is(image, 6, 6, {128, 128, 128}));
}

TEST(ReportGrid, CaptionsAreDrawnUnderTheirTileInTheTileColour) {
  const TileData data = ramp(1, 2, 2);
  const Image image = image_grid({tile_of(data, "#12 y=7"), tile_of(data, "#3 y=1", true)}, 2, 1, "");
  // Cells are as wide as the longer caption (7 glyphs: 41 px); captions start 3 px under the tiles.
  const int caption_top = 6 + 2 + kCaptionGap;
  auto count_in = [&](int x0, int x1, Rgb colour) {
    int n = 0;
    for (int y = caption_top; y < caption_top + kGlyphHeight; ++y)
      for (int x = x0; x < x1; ++x) n += pixel_is(image, x, y, colour);
    return n;
  };
  EXPECT_GT(count_in(6, 6 + 41, {0, 0, 0}), 20);
  EXPECT_EQ(count_in(6, 6 + 41, kHighlightColor), 0);
  EXPECT_GT(count_in(6 + 41 + 6, 6 + 2 * 41 + 6, kHighlightColor), 20);
  EXPECT_EQ(count_in(6 + 41 + 6, 6 + 2 * 41 + 6, {0, 0, 0}), 0);
}

TEST(ReportGrid, BadTilesAndArgumentsAreRefused) {
  const TileData data = ramp(2, 2, 2);
  EXPECT_THROW(image_grid({tile_of(data)}, 1, 1, ""), Error);  // 2 channels
  const TileData ok = ramp(1, 2, 2);
  EXPECT_THROW(image_grid({tile_of(ok)}, 0, 1, ""), Error);
  EXPECT_THROW(image_grid({tile_of(ok)}, 1, 0, ""), Error);
  EXPECT_THROW(image_grid({{nullptr, 1, 2, 2, "", false}}, 1, 1, ""), Error);
  EXPECT_THROW(image_grid({{ok.pixels.data(), 1, 0, 2, "", false}}, 1, 1, ""), Error);
  EXPECT_THROW(image_grid({{ok.pixels.data(), 1, 1 << 20, 1, "", false}}, 1, 1, ""), Error);
  // No tiles is a legitimate, if empty, figure.
  const Image empty = image_grid({}, 4, 3, "nothing found");
  EXPECT_GT(empty.width, 0);
  EXPECT_GT(empty.height, 0);
}

// ---- SVG ----

// Minimal well-formedness: one root element, every tag closed in order, attribute values
// quoted, no raw '<' in text or attributes, and every '&' starting a known entity.
::testing::AssertionResult well_formed_xml(const std::string& xml) {
  static const std::regex entity("^&(amp|lt|gt|quot|apos|#[0-9]+|#x[0-9a-fA-F]+);");
  auto check_ampersands = [&](std::string_view text) -> bool {
    for (size_t i = 0; i < text.size(); ++i)
      if (text[i] == '&' && !std::regex_search(std::string(text.substr(i, 12)), entity)) return false;
    return true;
  };
  std::vector<std::string> open;
  int roots = 0;
  size_t i = 0;
  while (i < xml.size()) {
    if (xml[i] != '<') {
      const size_t next = xml.find('<', i);
      const std::string_view text(xml.data() + i, (next == std::string::npos ? xml.size() : next) - i);
      if (!check_ampersands(text)) return ::testing::AssertionFailure() << "bare & in text near " << i;
      if (!open.empty() || text.find_first_not_of(" \n\t\r") == std::string::npos) {
        i += text.size();
        continue;
      }
      return ::testing::AssertionFailure() << "text outside the root element near " << i;
    }
    if (xml.compare(i, 2, "<?") == 0) {
      const size_t end = xml.find("?>", i);
      if (end == std::string::npos) return ::testing::AssertionFailure() << "unclosed declaration";
      i = end + 2;
      continue;
    }
    // Scan to the closing '>' outside quotes.
    size_t j = i + 1;
    char quote = 0;
    for (; j < xml.size(); ++j) {
      const char c = xml[j];
      if (quote) {
        if (c == quote) quote = 0;
        else if (c == '<') return ::testing::AssertionFailure() << "raw < in an attribute near " << j;
      } else if (c == '"' || c == '\'') {
        quote = c;
      } else if (c == '>') {
        break;
      } else if (c == '<') {
        return ::testing::AssertionFailure() << "raw < inside a tag near " << j;
      }
    }
    if (j >= xml.size()) return ::testing::AssertionFailure() << "unclosed tag at " << i;
    const std::string tag = xml.substr(i + 1, j - i - 1);
    if (!check_ampersands(tag)) return ::testing::AssertionFailure() << "bare & in tag <" << tag << ">";
    if (tag.empty()) return ::testing::AssertionFailure() << "empty tag at " << i;
    if (tag[0] == '/') {
      const std::string name = tag.substr(1);
      if (open.empty() || open.back() != name)
        return ::testing::AssertionFailure() << "</" << name << "> closes " << (open.empty() ? "nothing" : open.back());
      open.pop_back();
    } else {
      const std::string name = tag.substr(0, tag.find_first_of(" \n\t/"));
      if (open.empty() && ++roots > 1) return ::testing::AssertionFailure() << "second root <" << name << ">";
      if (tag.back() != '/') open.push_back(name);
    }
    i = j + 1;
  }
  if (!open.empty()) return ::testing::AssertionFailure() << "<" << open.back() << "> never closed";
  if (roots != 1) return ::testing::AssertionFailure() << roots << " root elements";
  return ::testing::AssertionSuccess();
}

TEST(ReportSvg, TheWellFormednessCheckCanFail) {
  EXPECT_TRUE(well_formed_xml("<?xml version=\"1.0\"?>\n<svg><g><text x=\"1\">a &amp; b</text></g><rect/></svg>\n"));
  EXPECT_FALSE(well_formed_xml("<svg><g></svg></g>"));
  EXPECT_FALSE(well_formed_xml("<svg><text>a & b</text></svg>"));
  EXPECT_FALSE(well_formed_xml("<svg><text>a < b</text></svg>"));
  EXPECT_FALSE(well_formed_xml("<svg><g>"));
  EXPECT_FALSE(well_formed_xml("<svg/><svg/>"));
}

// The text of every y tick label (right-anchored, left of the axis).
std::vector<std::string> y_tick_labels(const std::string& svg) {
  static const std::regex label("text-anchor=\"end\">([^<]*)</text>");
  std::vector<std::string> labels;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), label); it != std::sregex_iterator(); ++it)
    labels.push_back((*it)[1]);
  return labels;
}

size_t count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

Chart recall_chart() {
  Chart chart;
  chart.title = "Recall of corrupted examples (K > 0 & sorted)";
  chart.x_label = "fraction of D inspected";
  chart.y_label = "recall";
  chart.series.push_back({"a<b&c", {0, 0.25, 0.5, 1}, {0, 0.4, 0.8, 1}, "", false});
  chart.series.push_back({"random", {0, 1}, {0, 1}, "", true});
  return chart;
}

TEST(ReportSvg, LineChartIsWellFormedAndEscapesText) {
  const std::string svg = render_svg(recall_chart());
  EXPECT_TRUE(well_formed_xml(svg));
  EXPECT_NE(svg.find("a&lt;b&amp;c"), std::string::npos);
  EXPECT_EQ(svg.find("a<b&c"), std::string::npos);
  EXPECT_NE(svg.find("(K &gt; 0 &amp; sorted)"), std::string::npos);
  EXPECT_NE(svg.find(">random<"), std::string::npos);
  EXPECT_NE(svg.find(">fraction of D inspected<"), std::string::npos);
  EXPECT_NE(svg.find(">recall<"), std::string::npos);
  // Unnamed colours come from the palette, one per series; the dashed series is dashed.
  EXPECT_NE(svg.find("stroke=\"" + default_palette()[0] + "\""), std::string::npos);
  EXPECT_NE(svg.find("stroke=\"" + default_palette()[1] + "\""), std::string::npos);
  EXPECT_EQ(count(svg, "<path"), 2u);
  EXPECT_EQ(count(svg, "stroke-dasharray"), 2u);  // the line and its legend sample
}

TEST(ReportSvg, AutomaticAxesTickAtRoundNumbers) {
  EXPECT_EQ(y_tick_labels(render_svg(recall_chart())),
            (std::vector<std::string>{"0", "0.2", "0.4", "0.6", "0.8", "1"}));

  Chart losses;
  losses.series.push_back({"loss", {0, 1, 2, 3}, {0.013, 2.1, 0.9, 0.4}, "#000", false});
  // [0.013, 2.1] / 6 intervals -> step 0.5, rounded out to [0, 2.5].
  EXPECT_EQ(y_tick_labels(render_svg(losses)), (std::vector<std::string>{"0", "0.5", "1", "1.5", "2", "2.5"}));

  // Fixed bounds are kept even though the data spans less: 4 / 6 intervals -> step 1.
  losses.y_min = -1, losses.y_max = 3;
  EXPECT_EQ(y_tick_labels(render_svg(losses)), (std::vector<std::string>{"-1", "0", "1", "2", "3"}));
  // A fixed side that is not a tick stays where it is; ticks fall inside it.
  losses.y_min = 0.05, losses.y_max = 1;
  EXPECT_EQ(y_tick_labels(render_svg(losses)), (std::vector<std::string>{"0.2", "0.4", "0.6", "0.8", "1"}));
}

TEST(ReportSvg, NiceTicksAreMultiplesOfOneTwoOrFive) {
  const Ticks unit = nice_ticks(0, 1);
  EXPECT_DOUBLE_EQ(unit.step, 0.2);
  ASSERT_EQ(unit.values.size(), 6u);
  for (size_t i = 0; i < unit.values.size(); ++i) EXPECT_DOUBLE_EQ(unit.values[i], 0.2 * static_cast<double>(i));
  EXPECT_EQ(nice_ticks(0, 100).values, (std::vector<double>{0, 20, 40, 60, 80, 100}));
  EXPECT_EQ(nice_ticks(-3, 7).values, (std::vector<double>{-2, 0, 2, 4, 6}));
  const Ticks small = nice_ticks(0.001, 0.0095);
  EXPECT_DOUBLE_EQ(small.step, 0.002);
  EXPECT_EQ(small.values, (std::vector<double>{0.002, 0.004, 0.006, 0.008}));
  // A raw step that is nice up to rounding must stay nice: (-0.04 - -0.05) / 5 evaluates to
  // 0.0020000000000000005, which a strict "<= 2" comparison would push up to 0.005.
  EXPECT_DOUBLE_EQ(nice_ticks(-0.05, -0.04, 5).step, 0.002);
  EXPECT_DOUBLE_EQ(nice_ticks(0, 1, 5).step, 0.2);
  EXPECT_DOUBLE_EQ(nice_ticks(0, 10, 2).step, 5);
  EXPECT_THROW(nice_ticks(1, 1), Error);
  EXPECT_THROW(nice_ticks(0, NAN), Error);

  EXPECT_EQ(format_tick(0.6000000000000001, 0.2), "0.6");
  EXPECT_EQ(format_tick(-1e-17, 0.2), "0");
  EXPECT_EQ(format_tick(15, 5), "15");
  EXPECT_EQ(format_tick(0.005, 0.001), "0.005");
  EXPECT_EQ(format_tick(2, 0.5), "2");
  EXPECT_EQ(format_tick(-1.5, 0.5), "-1.5");
}

TEST(ReportSvg, NonFinitePointsBreakTheLine) {
  Chart chart;
  chart.series.push_back({"gappy", {0, 1, 2, 3, 4, 5}, {0, 1, NAN, 2, 3, 1}, "", false});
  const std::string svg = render_svg(chart);
  EXPECT_TRUE(well_formed_xml(svg));
  static const std::regex path("<path d=\"([^\"]*)\"");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(svg, m, path));
  EXPECT_EQ(count(m[1], "M"), 2u) << m[1];
  EXPECT_EQ(count(m[1], "L"), 3u) << m[1];
  EXPECT_EQ(svg.find("nan"), std::string::npos);
}

TEST(ReportSvg, BadChartsAreRefused) {
  Chart chart = recall_chart();
  chart.series[0].y.pop_back();
  EXPECT_THROW(render_svg(chart), Error);
  chart = recall_chart();
  chart.y_min = 1, chart.y_max = 1;
  EXPECT_THROW(render_svg(chart), Error);
  chart.y_min = 0, chart.y_max = INFINITY;
  EXPECT_THROW(render_svg(chart), Error);
  EXPECT_THROW(render_svg(recall_chart(), 80, 60), Error);
  // An empty chart is still a drawable document.
  EXPECT_TRUE(well_formed_xml(render_svg(Chart{})));
}

BarChart accuracy_table() {
  BarChart chart;
  chart.title = "Test accuracy";
  chart.y_label = "accuracy";
  chart.categories = {"clean", "flip 1<->7 & 6<->9", "shift"};
  chart.series.push_back({"before", {0.91, 0.85, 0.80}, {0.01, 0.02, NAN}, "", {}});
  chart.series.push_back({"after", {0.981, 0.95, NAN}, {}, "#123456", {}});
  return chart;
}

TEST(ReportSvg, BarChartDrawsOneBarPerValueWithErrorBars) {
  const std::string svg = render_bar_svg(accuracy_table());
  EXPECT_TRUE(well_formed_xml(svg));
  EXPECT_NE(svg.find("flip 1&lt;-&gt;7 &amp; 6&lt;-&gt;9"), std::string::npos);
  EXPECT_NE(svg.find(">before<"), std::string::npos);
  EXPECT_NE(svg.find(">after<"), std::string::npos);
  // Bars: three from "before", two from "after" (its NaN is no bar); each legend has a swatch.
  EXPECT_EQ(count(svg, "fill=\"" + default_palette()[0] + "\""), 3u + 1u);
  EXPECT_EQ(count(svg, "fill=\"#123456\""), 2u + 1u);
  EXPECT_EQ(count(svg, "stroke=\"#222\""), 2u);  // error bars: the NaN error draws none
  EXPECT_NE(svg.find(">0.981<"), std::string::npos);
  // Auto range includes the base 0 and the tallest bar 0.981: ticks 0 .. 1 by 0.2.
  EXPECT_EQ(y_tick_labels(svg), (std::vector<std::string>{"0", "0.2", "0.4", "0.6", "0.8", "1"}));
}

TEST(ReportSvg, BadBarChartsAreRefused) {
  BarChart chart = accuracy_table();
  chart.series[1].values.pop_back();
  EXPECT_THROW(render_bar_svg(chart), Error);
  chart = accuracy_table();
  chart.series[0].errors = {0.1};
  EXPECT_THROW(render_bar_svg(chart), Error);
  chart = accuracy_table();
  chart.series[0].errors = {0.1, -0.1, 0.1};
  EXPECT_THROW(render_bar_svg(chart), Error);
}

TEST(ReportSvg, XmlEscapeCoversMarkupQuotesAndControlCharacters) {
  EXPECT_EQ(xml_escape("a<b&c>\"d'"), "a&lt;b&amp;c&gt;&quot;d&apos;");
  EXPECT_EQ(xml_escape(std::string("x\x01y\tz", 5)), "x?y\tz");
  EXPECT_EQ(xml_escape("caf\xc3\xa9"), "caf\xc3\xa9");  // UTF-8 passes through
}

}  // namespace
}  // namespace lethe::report
