#pragma once
// Small SVG charts for the reports, written by hand so that no plotting library is needed:
// line charts (recall curves, loss against step) and grouped bars (accuracy tables). The text
// returned is a complete, well-formed SVG document; callers store it with write_file_atomic.
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace lethe::report {

inline constexpr double kAuto = std::numeric_limits<double>::quiet_NaN();

struct Series {
  std::string name;
  std::vector<double> x, y;  // same length; a non-finite point breaks the line there
  std::string color;         // any SVG colour; empty = the next palette colour
  bool dashed = false;
  bool points_only = false;  // a scatter: a marker at every point, no line
};

struct Chart {
  std::string title, x_label, y_label;
  // Axis bounds; NaN (kAuto) = from the data, rounded outward to a tick.
  double x_min = kAuto, x_max = kAuto, y_min = kAuto, y_max = kAuto;
  std::vector<Series> series;
};

// A line chart with axes, ticks at "nice" values, light gridlines and a legend to the right of
// the plot. Throws an Error for mismatched x/y lengths, bounds with min >= max, or a size too
// small to hold the plot.
std::string render_svg(const Chart& chart, int width = 640, int height = 420);

struct BarSeries {
  std::string name;
  std::vector<double> values;  // one per category; NaN = no bar
  std::vector<double> errors;  // empty, or one half-width per category (NaN = no error bar)
  std::string color;           // empty = the next palette colour
  std::vector<double> errors_high;  // empty, or the upper half-widths (errors then the lower ones)
};

struct BarChart {
  std::string title, x_label, y_label;
  std::vector<std::string> categories;
  std::vector<BarSeries> series;
  double y_min = kAuto, y_max = kAuto;  // auto always includes 0, the bars' base
  bool show_values = true;             // print each value above (or below) its bar
};

// Grouped bars: one group per category, one bar per series, optional error bars.
std::string render_bar_svg(const BarChart& chart, int width = 640, int height = 420);

// ---- pieces, exposed for tests and for other figure writers ----

// Tick positions for an axis: `step` is 1, 2 or 5 times a power of ten giving about `target`
// intervals over [lo, hi]; `values` are the multiples of step inside [lo, hi].
struct Ticks {
  double step = 0;
  std::vector<double> values;
};
Ticks nice_ticks(double lo, double hi, int target = 6);

// A tick value with as many decimals as its step needs, trailing zeros dropped ("0.2", "1",
// "15", "0.005").
std::string format_tick(double value, double step);

// Text made safe for XML content and attribute values (& < > " ' escaped, control characters
// other than tab and newline replaced by '?', since XML 1.0 forbids them).
std::string xml_escape(std::string_view text);

// The colours given to series without one, in order (repeating after the last).
const std::vector<std::string>& default_palette();

}  // namespace lethe::report
