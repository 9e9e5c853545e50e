// The registry of methods and treatments: what the CLI, validation and the experiment read.
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "repair/identify.h"
#include "evaluation/protocol.h"
#include "repair/registry.h"
#include "repair/treat.h"
#include "util/error.h"

namespace lethe::repair {
namespace {

TEST(Registry, ListsEveryMethodAndTreatmentOnceInOrder) {
  EXPECT_EQ(identify_methods(),
            (std::vector<std::string>{"ewc", "kfac-ewc", "linear", "ekfac", "sgd-influence", "tracin", "trak", "gradcos", "loss", "random"}));
  EXPECT_EQ(treatment_list(), (std::vector<std::string>{"finetune", "retrain", "newton", "ewc-delete"}));
  for (const MethodInfo* m : methods()) {
    EXPECT_TRUE(static_cast<bool>(m->run)) << m->name;
    EXPECT_FALSE(m->summary.empty()) << m->name;
    std::set<std::string> flags;
    for (const auto& o : m->options) {
      EXPECT_TRUE(flags.insert(o.flag).second) << m->name << " declares " << o.flag << " twice";
      EXPECT_EQ(o.flag.rfind("--", 0), 0u) << o.flag;
      EXPECT_FALSE(o.help.empty()) << o.flag;
    }
  }
  for (const TreatmentInfo* t : treatments()) EXPECT_TRUE(static_cast<bool>(t->run)) << t->name;
}

TEST(Registry, TheExperimentsDefaultsComeFromIt) {
  const ExperimentSettings s;
  // Every registered method but those kept for influence benchmarking, in registry order.
  EXPECT_EQ(s.methods, (std::vector<std::string>{"ewc", "kfac-ewc", "linear", "tracin", "gradcos", "loss", "random"}));
  std::vector<std::string> marked;
  for (const MethodInfo* m : methods())
    if (m->in_experiment) marked.push_back(m->name);
  EXPECT_EQ(s.methods, marked);
  EXPECT_EQ(s.treatments, (std::vector<std::string>{"newton", "ewc-delete"}));
}

TEST(Registry, UnknownNamesAreUsageErrorsListingTheKnownOnes) {
  try {
    find_method("oracle-of-delphi", "--methods");
    ADD_FAILURE() << "no error";
  } catch (const UsageError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("--methods"), std::string::npos) << m;
    EXPECT_NE(m.find("oracle-of-delphi"), std::string::npos) << m;
    for (const MethodInfo* info : methods()) EXPECT_NE(m.find(info->name), std::string::npos) << m;
  }
  EXPECT_THROW(find_treatment("amnesia"), UsageError);
}

TEST(Registry, OptionChecksRunWhateverTheMethod) {
  IdentifyOptions o;
  o.method = "loss";
  o.ewc.lr = -1;  // an ewc option: refused even though loss does not read it, as before the registry
  EXPECT_THROW(validate(o, 10, 0), UsageError);
  TreatOptions t;
  t.treatment = "finetune";
  t.max_steps = 0;  // --delete-steps
  EXPECT_THROW(validate(t), UsageError);
}

// Each flag is declared once to the CLI, with every method that reads it.
TEST(Registry, SharedOptionsNameAllTheirOwners) {
  for (const auto& use : method_options())
    if (use.option->flag == "--ewc-lr") {
      EXPECT_EQ(use.owners, (std::vector<std::string>{"ewc", "kfac-ewc"}));
    }
  std::set<std::string> flags;
  for (const auto& use : treatment_options()) EXPECT_TRUE(flags.insert(use.option->flag).second) << use.option->flag;
}

}  // namespace
}  // namespace lethe::repair
