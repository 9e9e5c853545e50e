#include "report/svg.h"

#include <algorithm>
#include <cmath>
#include <iterator>

#include <fmt/format.h>

#include "util/error.h"

namespace lethe::report {
namespace {

// Text is measured by estimate (there is no font engine here): an average sans-serif glyph at
// 12 px is about 0.55 em wide. Layout leaves a little slack for that reason.
constexpr double kCharWidth = 6.6;
constexpr int kFontSize = 12;
constexpr int kTickTarget = 6;
constexpr double kLegendSample = 24, kLegendRow = 18, kLegendGap = 6;
// Coordinates of points far outside the plot are pulled in to this many pixels: they are
// clipped anyway, and this keeps the file free of 300-digit numbers.
constexpr double kCoordinateLimit = 1e6;
// Relative slack when comparing ratios that should be whole or nice numbers in exact arithmetic.
constexpr double kRoundingSlack = 1e-9;

double estimated_width(std::string_view text) {
  size_t characters = 0;
  for (char c : text) characters += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return static_cast<double>(characters) * kCharWidth;
}

// A step of nice_mantissa * 10^exponent, kept apart so tick values can be computed exactly.
struct NiceStep {
  int mantissa;  // 1, 2 or 5
  int exponent;
  double value() const { return mantissa * std::pow(10.0, exponent); }
  // The i-th multiple of the step; dividing by a power of ten (rather than multiplying by its
  // inexact reciprocal) gives 0.6, not 0.6000000000000001.
  double multiple(int64_t i) const {
    const double whole = static_cast<double>(i) * mantissa;
    return exponent < 0 ? whole / std::pow(10.0, -exponent) : whole * std::pow(10.0, exponent);
  }
};

NiceStep nice_step(double raw) {
  LETHE_CHECK(raw > 0 && std::isfinite(raw), "tick step {} must be positive and finite", raw);
  int exponent = static_cast<int>(std::floor(std::log10(raw)));
  const double fraction = raw / std::pow(10.0, exponent);
  int mantissa;
  if (fraction <= 1 + kRoundingSlack) mantissa = 1;
  else if (fraction <= 2 + kRoundingSlack) mantissa = 2;
  else if (fraction <= 5 + kRoundingSlack) mantissa = 5;
  else mantissa = 1, ++exponent;
  return {mantissa, exponent};
}

struct Axis {
  double lo = 0, hi = 1;
  Ticks ticks;
};

// Picks an axis from the data's finite extent [data_lo, data_hi] (empty when data_lo >
// data_hi) and the caller's bounds (NaN = automatic); automatic sides are rounded out to a tick.
Axis resolve_axis(std::string_view name, double data_lo, double data_hi, double fixed_lo, double fixed_hi,
                  bool include_zero) {
  for (double bound : {fixed_lo, fixed_hi})
    if (!std::isnan(bound) && !std::isfinite(bound)) fail("{} axis bound {} is not finite", name, bound);
  const bool auto_lo = std::isnan(fixed_lo), auto_hi = std::isnan(fixed_hi);
  if (!auto_lo && !auto_hi && !(fixed_lo < fixed_hi))
    fail("{} axis minimum {} is not below its maximum {}", name, fixed_lo, fixed_hi);
  if (data_lo > data_hi) data_lo = 0, data_hi = 1;  // nothing to show: the unit interval
  if (include_zero) data_lo = std::min(data_lo, 0.0), data_hi = std::max(data_hi, 0.0);

  double lo = auto_lo ? data_lo : fixed_lo, hi = auto_hi ? data_hi : fixed_hi;
  if (!(lo < hi)) {
    // One value, or a fixed side beyond all the data: open a span around what is fixed.
    auto pad = [](double v) { return v != 0 ? std::abs(v) * 0.1 : 1.0; };
    if (auto_lo && auto_hi) {
      const double p = pad(lo);
      lo -= p, hi += p;
    } else if (auto_lo) {
      lo = hi - 2 * pad(hi);
    } else {
      hi = lo + 2 * pad(lo);
    }
  }
  if (!std::isfinite(hi - lo)) fail("{} axis range [{}, {}] is too wide to draw", name, lo, hi);

  const NiceStep step = nice_step((hi - lo) / kTickTarget);
  const double s = step.value();
  if (auto_lo) lo = step.multiple(static_cast<int64_t>(std::floor(lo / s + kRoundingSlack)));
  if (auto_hi) hi = step.multiple(static_cast<int64_t>(std::ceil(hi / s - kRoundingSlack)));

  Axis axis{lo, hi, {s, {}}};
  const auto first = static_cast<int64_t>(std::ceil(lo / s - kRoundingSlack));
  const auto last = static_cast<int64_t>(std::floor(hi / s + kRoundingSlack));
  for (int64_t i = first; i <= last; ++i) axis.ticks.values.push_back(step.multiple(i));
  return axis;
}

// Maps a data value to a pixel coordinate.
struct Mapping {
  double lo, hi, from, to;
  double operator()(double v) const {
    const double pixel = from + (v - lo) / (hi - lo) * (to - from);
    return std::clamp(pixel, -kCoordinateLimit, kCoordinateLimit);
  }
};

struct PlotArea {
  double left, top, right, bottom;
};

struct LegendEntry {
  std::string name, color;
  bool dashed = false, swatch = false;  // swatch: a filled square (bars) instead of a line
};

std::string color_or_palette(const std::string& color, size_t index) {
  const auto& palette = default_palette();
  return color.empty() ? palette[index % palette.size()] : color;
}

double legend_width(const std::vector<LegendEntry>& entries) {
  double widest = 0;
  for (const auto& e : entries) widest = std::max(widest, estimated_width(e.name));
  return entries.empty() ? 0 : kLegendSample + kLegendGap + widest + 8;
}

// The margins around the plot, from the labels that go in them; throws when nothing is left.
PlotArea place_plot(int width, int height, const std::string& title, const std::string& x_label,
                    const std::string& y_label, const std::vector<std::string>& y_tick_labels,
                    const std::vector<LegendEntry>& legend) {
  if (width < 1 || height < 1) fail("chart size {}x{} must be positive", width, height);
  double widest_tick = 0;
  for (const auto& label : y_tick_labels) widest_tick = std::max(widest_tick, estimated_width(label));
  PlotArea area;
  area.left = 10 + (y_label.empty() ? 0 : 22) + widest_tick + 8;
  area.top = title.empty() ? 14 : 38;
  area.right = width - 16 - (legend.empty() ? 0 : legend_width(legend) + 10);
  area.bottom = height - 26 - (x_label.empty() ? 0 : 20);
  constexpr double kMinPlotSide = 40;
  if (area.right - area.left < kMinPlotSide || area.bottom - area.top < kMinPlotSide)
    fail("chart size {}x{} is too small for its labels and legend", width, height);
  return area;
}

void open_document(std::string& out, int width, int height, const std::string& title, const PlotArea& area) {
  fmt::format_to(std::back_inserter(out),
                 "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                 "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
                 "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"{2}\">\n"
                 "<rect x=\"0\" y=\"0\" width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n",
                 width, height, kFontSize);
  // The clip is a little larger than the plot so a line lying on the top or right edge keeps
  // its full stroke.
  fmt::format_to(std::back_inserter(out),
                 "<defs><clipPath id=\"plot-area\"><rect x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\"/>"
                 "</clipPath></defs>\n",
                 area.left - 3, area.top - 3, area.right - area.left + 6, area.bottom - area.top + 6);
  if (!title.empty())
    fmt::format_to(std::back_inserter(out),
                   "<text x=\"{:.2f}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">{}</text>\n",
                   width / 2.0, xml_escape(title));
}

void draw_y_axis(std::string& out, const PlotArea& area, const Axis& axis, const Mapping& to_y,
                 const std::string& y_label) {
  out += "<g class=\"y-axis\">\n";
  for (double v : axis.ticks.values) {
    const double y = to_y(v);
    fmt::format_to(std::back_inserter(out),
                   "<line x1=\"{0:.2f}\" y1=\"{2:.2f}\" x2=\"{1:.2f}\" y2=\"{2:.2f}\" stroke=\"#e3e3e3\"/>"
                   "<line x1=\"{3:.2f}\" y1=\"{2:.2f}\" x2=\"{0:.2f}\" y2=\"{2:.2f}\" stroke=\"#333\"/>"
                   "<text x=\"{4:.2f}\" y=\"{5:.2f}\" text-anchor=\"end\">{6}</text>\n",
                   area.left, area.right, y, area.left - 5, area.left - 8, y + 4,
                   xml_escape(format_tick(v, axis.ticks.step)));
  }
  fmt::format_to(std::back_inserter(out), "<line x1=\"{0:.2f}\" y1=\"{1:.2f}\" x2=\"{0:.2f}\" y2=\"{2:.2f}\" stroke=\"#333\"/>\n",
                 area.left, area.top, area.bottom);
  if (!y_label.empty()) {
    const double x = 16, y = (area.top + area.bottom) / 2;
    fmt::format_to(std::back_inserter(out),
                   "<text x=\"{0:.2f}\" y=\"{1:.2f}\" text-anchor=\"middle\" transform=\"rotate(-90 {0:.2f} {1:.2f})\">{2}</text>\n",
                   x, y, xml_escape(y_label));
  }
  out += "</g>\n";
}

void draw_x_label(std::string& out, const PlotArea& area, const std::string& x_label) {
  if (x_label.empty()) return;
  fmt::format_to(std::back_inserter(out), "<text x=\"{:.2f}\" y=\"{:.2f}\" text-anchor=\"middle\">{}</text>\n",
                 (area.left + area.right) / 2, area.bottom + 40, xml_escape(x_label));
}

void draw_legend(std::string& out, const PlotArea& area, const std::vector<LegendEntry>& entries) {
  if (entries.empty()) return;
  const double x = area.right + 14;
  out += "<g class=\"legend\">\n";
  for (size_t i = 0; i < entries.size(); ++i) {
    const LegendEntry& e = entries[i];
    const double y = area.top + 8 + static_cast<double>(i) * kLegendRow;
    const std::string color = xml_escape(e.color);
    if (e.swatch)
      fmt::format_to(std::back_inserter(out), "<rect x=\"{:.2f}\" y=\"{:.2f}\" width=\"12\" height=\"12\" fill=\"{}\"/>",
                     x + 6, y - 6, color);
    else
      fmt::format_to(std::back_inserter(out),
                     "<line x1=\"{:.2f}\" y1=\"{:.2f}\" x2=\"{:.2f}\" y2=\"{:.2f}\" stroke=\"{}\" stroke-width=\"2\"{}/>",
                     x, y, x + kLegendSample, y, color, e.dashed ? " stroke-dasharray=\"6 4\"" : "");
    fmt::format_to(std::back_inserter(out), "<text x=\"{:.2f}\" y=\"{:.2f}\">{}</text>\n", x + kLegendSample + kLegendGap,
                   y + 4, xml_escape(e.name));
  }
  out += "</g>\n";
}

void extend(double& lo, double& hi, double v) {
  if (!std::isfinite(v)) return;
  lo = std::min(lo, v);
  hi = std::max(hi, v);
}

constexpr double kEmptyLo = std::numeric_limits<double>::infinity(), kEmptyHi = -kEmptyLo;

std::vector<std::string> tick_labels(const Axis& axis) {
  std::vector<std::string> labels;
  for (double v : axis.ticks.values) labels.push_back(format_tick(v, axis.ticks.step));
  return labels;
}

// A value printed over a bar: three significant digits, without exponent notation for the
// magnitudes accuracy tables hold.
std::string format_value(double v) {
  if (std::abs(v) >= 1000) return fmt::format("{:.0f}", v);
  return fmt::format("{:.3g}", v);
}

}  // namespace

Ticks nice_ticks(double lo, double hi, int target) {
  if (!std::isfinite(lo) || !std::isfinite(hi) || !(lo < hi) || !std::isfinite(hi - lo))
    fail("tick range [{}, {}] must be finite with min < max", lo, hi);
  if (target < 1) fail("tick target {} must be at least 1", target);
  const NiceStep step = nice_step((hi - lo) / target);
  const double s = step.value();
  Ticks ticks{s, {}};
  const auto first = static_cast<int64_t>(std::ceil(lo / s - kRoundingSlack));
  const auto last = static_cast<int64_t>(std::floor(hi / s + kRoundingSlack));
  for (int64_t i = first; i <= last; ++i) ticks.values.push_back(step.multiple(i));
  return ticks;
}

std::string format_tick(double value, double step) {
  if (!std::isfinite(value)) return fmt::format("{}", value);
  if (step > 0 && std::abs(value) < step * 1e-6) value = 0;  // a sum that should be zero
  if (value == 0) return "0";                                 // never "-0"
  const int decimals = step > 0 ? std::max(0, -static_cast<int>(std::floor(std::log10(step) + kRoundingSlack))) : 3;
  if (decimals > 6 || std::abs(value) >= 1e7) return fmt::format("{:.4g}", value);
  // Trailing zeros go ("1", not "1.0", beside "0.8"): a tick is read as a number, not a column.
  std::string text = fmt::format("{:.{}f}", value, decimals);
  if (text.find('.') != std::string::npos) {
    while (text.back() == '0') text.pop_back();
    if (text.back() == '.') text.pop_back();
  }
  return text;
}

std::string xml_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') out += '?';
        else out += c;
    }
  }
  return out;
}

const std::vector<std::string>& default_palette() {
  // Distinguishable on white and from each other; red second so "corrupted" pairs well with blue.
  static const std::vector<std::string> palette = {"#1f5fbf", "#d1342b", "#2e8b3a", "#8a3fb8",
                                                   "#e07b10", "#1a9aa8", "#5c5c5c", "#b8960c"};
  return palette;
}

std::string render_svg(const Chart& chart, int width, int height) {
  double x_lo = kEmptyLo, x_hi = kEmptyHi, y_lo = kEmptyLo, y_hi = kEmptyHi;
  std::vector<LegendEntry> legend;
  for (size_t s = 0; s < chart.series.size(); ++s) {
    const Series& series = chart.series[s];
    if (series.x.size() != series.y.size())
      fail("chart series '{}' has {} x values and {} y values", series.name, series.x.size(), series.y.size());
    for (size_t i = 0; i < series.x.size(); ++i) {
      if (!std::isfinite(series.x[i]) || !std::isfinite(series.y[i])) continue;
      extend(x_lo, x_hi, series.x[i]);
      extend(y_lo, y_hi, series.y[i]);
    }
    if (!series.name.empty()) legend.push_back({series.name, color_or_palette(series.color, s), series.dashed, false});
  }
  const Axis x_axis = resolve_axis("x", x_lo, x_hi, chart.x_min, chart.x_max, false);
  const Axis y_axis = resolve_axis("y", y_lo, y_hi, chart.y_min, chart.y_max, false);
  const PlotArea area = place_plot(width, height, chart.title, chart.x_label, chart.y_label, tick_labels(y_axis), legend);
  const Mapping to_x{x_axis.lo, x_axis.hi, area.left, area.right};
  const Mapping to_y{y_axis.lo, y_axis.hi, area.bottom, area.top};

  std::string out;
  open_document(out, width, height, chart.title, area);
  draw_y_axis(out, area, y_axis, to_y, chart.y_label);
  out += "<g class=\"x-axis\">\n";
  for (double v : x_axis.ticks.values) {
    const double x = to_x(v);
    fmt::format_to(std::back_inserter(out),
                   "<line x1=\"{0:.2f}\" y1=\"{1:.2f}\" x2=\"{0:.2f}\" y2=\"{2:.2f}\" stroke=\"#e3e3e3\"/>"
                   "<line x1=\"{0:.2f}\" y1=\"{2:.2f}\" x2=\"{0:.2f}\" y2=\"{3:.2f}\" stroke=\"#333\"/>"
                   "<text x=\"{0:.2f}\" y=\"{4:.2f}\" text-anchor=\"middle\">{5}</text>\n",
                   x, area.top, area.bottom, area.bottom + 5, area.bottom + 18,
                   xml_escape(format_tick(v, x_axis.ticks.step)));
  }
  fmt::format_to(std::back_inserter(out), "<line x1=\"{0:.2f}\" y1=\"{2:.2f}\" x2=\"{1:.2f}\" y2=\"{2:.2f}\" stroke=\"#333\"/>\n",
                 area.left, area.right, area.bottom);
  out += "</g>\n";
  draw_x_label(out, area, chart.x_label);

  out += "<g clip-path=\"url(#plot-area)\" fill=\"none\" stroke-width=\"2\" stroke-linejoin=\"round\">\n";
  for (size_t s = 0; s < chart.series.size(); ++s) {
    const Series& series = chart.series[s];
    const std::string color = xml_escape(color_or_palette(series.color, s));
    // Few points read better with markers; a point between two gaps has no line, so it always
    // gets one.
    const bool mark_every_point = series.points_only || series.x.size() <= 20;
    std::string path;
    auto finite_at = [&](size_t i) { return i < series.x.size() && std::isfinite(series.x[i]) && std::isfinite(series.y[i]); };
    for (size_t i = 0; i < series.x.size(); ++i) {
      if (!finite_at(i)) continue;
      const bool starts_run = i == 0 || !finite_at(i - 1);
      const double px = to_x(series.x[i]), py = to_y(series.y[i]);
      fmt::format_to(std::back_inserter(path), "{}{:.2f} {:.2f} ", starts_run ? "M" : "L", px, py);
      const bool isolated = starts_run && !finite_at(i + 1);
      if (mark_every_point || isolated)
        fmt::format_to(std::back_inserter(out), "<circle cx=\"{:.2f}\" cy=\"{:.2f}\" r=\"2.5\" fill=\"{}\" stroke=\"none\"/>\n",
                       px, py, color);
    }
    if (!path.empty() && !series.points_only) {
      path.pop_back();
      fmt::format_to(std::back_inserter(out), "<path d=\"{}\" stroke=\"{}\"{}/>\n", path, color,
                     series.dashed ? " stroke-dasharray=\"6 4\"" : "");
    }
  }
  out += "</g>\n";
  draw_legend(out, area, legend);
  out += "</svg>\n";
  return out;
}

std::string render_bar_svg(const BarChart& chart, int width, int height) {
  const size_t categories = chart.categories.size();
  double y_lo = kEmptyLo, y_hi = kEmptyHi;
  std::vector<LegendEntry> legend;
  for (size_t s = 0; s < chart.series.size(); ++s) {
    const BarSeries& series = chart.series[s];
    if (series.values.size() != categories)
      fail("bar series '{}' has {} values for {} categories", series.name, series.values.size(), categories);
    if (!series.errors.empty() && series.errors.size() != categories)
      fail("bar series '{}' has {} error bars for {} categories", series.name, series.errors.size(), categories);
    if (!series.errors_high.empty() && series.errors_high.size() != series.errors.size())
      fail("bar series '{}' has {} upper error bars for {} lower", series.name, series.errors_high.size(),
           series.errors.size());
    for (size_t c = 0; c < categories; ++c) {
      const double v = series.values[c];
      const double e = series.errors.empty() ? 0.0 : series.errors[c];
      const double eh = series.errors_high.empty() ? e : series.errors_high[c];
      if (e < 0 || eh < 0)
        fail("bar series '{}' has a negative error {} for '{}'", series.name, std::min(e, eh), chart.categories[c]);
      extend(y_lo, y_hi, v);
      if (std::isfinite(e)) extend(y_lo, y_hi, v - e);
      if (std::isfinite(eh)) extend(y_lo, y_hi, v + eh);
    }
    if (!series.name.empty()) legend.push_back({series.name, color_or_palette(series.color, s), false, true});
  }
  const Axis y_axis = resolve_axis("y", y_lo, y_hi, chart.y_min, chart.y_max, true);
  const PlotArea area = place_plot(width, height, chart.title, chart.x_label, chart.y_label, tick_labels(y_axis), legend);
  const Mapping to_y{y_axis.lo, y_axis.hi, area.bottom, area.top};

  std::string out;
  open_document(out, width, height, chart.title, area);
  draw_y_axis(out, area, y_axis, to_y, chart.y_label);
  fmt::format_to(std::back_inserter(out), "<line x1=\"{0:.2f}\" y1=\"{2:.2f}\" x2=\"{1:.2f}\" y2=\"{2:.2f}\" stroke=\"#333\"/>\n",
                 area.left, area.right, area.bottom);
  draw_x_label(out, area, chart.x_label);

  const double slot = categories ? (area.right - area.left) / static_cast<double>(categories) : 0;
  const double bar = chart.series.empty() ? 0 : slot * 0.8 / static_cast<double>(chart.series.size());
  const double base = to_y(std::clamp(0.0, y_axis.lo, y_axis.hi));
  // With negative bars the base is inside the plot: mark it as firmly as the axis.
  if (base < area.bottom - 0.5)
    fmt::format_to(std::back_inserter(out), "<line x1=\"{0:.2f}\" y1=\"{2:.2f}\" x2=\"{1:.2f}\" y2=\"{2:.2f}\" stroke=\"#333\"/>\n",
                   area.left, area.right, base);
  out += "<g class=\"categories\" text-anchor=\"middle\">\n";
  for (size_t c = 0; c < categories; ++c)
    fmt::format_to(std::back_inserter(out), "<text x=\"{:.2f}\" y=\"{:.2f}\">{}</text>\n",
                   area.left + slot * (static_cast<double>(c) + 0.5), area.bottom + 18, xml_escape(chart.categories[c]));
  out += "</g>\n<g clip-path=\"url(#plot-area)\">\n";
  // Value labels go outside the clip: the one over the tallest bar sits above the plot.
  std::string value_labels;
  for (size_t s = 0; s < chart.series.size(); ++s) {
    const BarSeries& series = chart.series[s];
    const std::string color = xml_escape(color_or_palette(series.color, s));
    for (size_t c = 0; c < categories; ++c) {
      const double v = series.values[c];
      if (!std::isfinite(v)) continue;
      const double left = area.left + slot * (static_cast<double>(c) + 0.1) + bar * static_cast<double>(s);
      const double top = to_y(v);
      fmt::format_to(std::back_inserter(out), "<rect x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\" fill=\"{}\"/>\n",
                     left, std::min(top, base), bar, std::abs(base - top), color);
      const double e = series.errors.empty() ? kAuto : series.errors[c];
      const double eh = series.errors_high.empty() ? e : series.errors_high[c];
      const double centre = left + bar / 2;
      double label_above = std::min(top, base), label_below = std::max(top, base);
      if (std::isfinite(e) && std::isfinite(eh) && (e > 0 || eh > 0)) {
        const double hi = to_y(v + eh), lo = to_y(v - e), cap = bar / 4;
        fmt::format_to(std::back_inserter(out),
                       "<path d=\"M{0:.2f} {1:.2f} L{0:.2f} {2:.2f} M{3:.2f} {1:.2f} L{4:.2f} {1:.2f} M{3:.2f} {2:.2f} "
                       "L{4:.2f} {2:.2f}\" stroke=\"#222\" fill=\"none\"/>\n",
                       centre, hi, lo, centre - cap, centre + cap);
        label_above = std::min(label_above, hi);
        label_below = std::max(label_below, lo);
      }
      if (chart.show_values) {
        const bool below = v < 0;
        fmt::format_to(std::back_inserter(value_labels), "<text x=\"{:.2f}\" y=\"{:.2f}\">{}</text>\n",
                       centre, below ? label_below + 12 : label_above - 4, xml_escape(format_value(v)));
      }
    }
  }
  out += "</g>\n";
  if (!value_labels.empty()) out += "<g class=\"values\" text-anchor=\"middle\" font-size=\"10\">\n" + value_labels + "</g>\n";
  draw_legend(out, area, legend);
  out += "</svg>\n";
  return out;
}

}  // namespace lethe::report
