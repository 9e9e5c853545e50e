// The named random streams: one number per purpose, never two purposes on one number.
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "util/streams.h"

namespace lethe {
namespace {

TEST(Streams, EveryStreamHasItsOwnNumberAndName) {
  std::set<uint64_t> ids;
  std::set<std::string> names;
  for (const auto& s : kStreams) {
    EXPECT_TRUE(ids.insert(static_cast<uint64_t>(s.id)).second) << "stream number " << static_cast<uint64_t>(s.id)
                                                                << " is listed twice";
    EXPECT_TRUE(names.insert(s.name).second) << "stream name " << s.name << " is listed twice";
    EXPECT_NE(static_cast<uint64_t>(s.id), 0u) << s.name << ": 0 is no stream";
  }
  // The table lists the enum's values 1..N, so a value added to the enum without a row (or a
  // row whose number was reused) shows here.
  EXPECT_EQ(*ids.rbegin(), kStreams.size());
}

TEST(Streams, DistinctStreamsDrawDistinctBits) {
  for (uint64_t seed : {0ull, 1ull, 11ull, 0xFFFFFFFFFFFFFFFFull}) {
    std::set<uint64_t> first;
    for (const auto& s : kStreams) EXPECT_TRUE(first.insert(stream_seed(seed, s.id)).second) << s.name << " seed " << seed;
    // A stream is a function of (seed, purpose) alone.
    EXPECT_EQ(stream_seed(seed, Stream::kNoise), stream_seed(seed, Stream::kNoise));
  }
}

}  // namespace
}  // namespace lethe
