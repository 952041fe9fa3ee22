#include "core/node_facts.h"

#include <gtest/gtest.h>

namespace cgpu {
namespace {

// Every instance family the seed's instance-family table names.
constexpr const char* kSeedFamilies[] = {
    "gn6i",  "gn6e", "gn6v",     "gn6t",    "ebmgn6i", "ebmgn6t",  "ebmgn6e",
    "gn7i",  "gn7",  "gn7e",     "ebmgn7i", "ebmgn7e", "gn8t",     "ebmgn8t",
    "gn8is", "gn8v", "ebmgn8is", "ebmgn8v", "gn8ia",   "ebmgn8ia", "ebmgn9t"};

TEST(InstanceFamilyTest, EverySeedFamilyInBothTypeShapes) {
  for (const char* family : kSeedFamilies) {
    const std::string f = family;
    EXPECT_EQ(InstanceFamily("ecs." + f + "-c8g1.2xlarge"), f);
    EXPECT_EQ(InstanceFamily("ecs." + f + ".32xlarge"), f);
    EXPECT_EQ(InstanceFamily("ecs." + f + "-2x.8xlarge"), f);
  }
}

TEST(InstanceFamilyTest, RealTypeNames) {
  EXPECT_EQ(InstanceFamily("ecs.gn7i-c8g1.2xlarge"), "gn7i");
  EXPECT_EQ(InstanceFamily("ecs.gn6v-c8g1.2xlarge"), "gn6v");
  EXPECT_EQ(InstanceFamily("ecs.ebmgn7e.32xlarge"), "ebmgn7e");
  EXPECT_EQ(InstanceFamily("ecs.gn8is-2x.8xlarge"), "gn8is");
  EXPECT_EQ(InstanceFamily("ecs.gn6t.3xlarge"), "gn6t");
  EXPECT_EQ(InstanceFamily("ecs.ebmgn9t.48xlarge"), "ebmgn9t");
  EXPECT_EQ(InstanceFamily("ecs.GN7I-c8g1.2xlarge"), "gn7i");
}

TEST(InstanceFamilyTest, TeeIsAFamilyOfItsOwn) {
  EXPECT_EQ(InstanceFamily("ecs.gn8v-tee-8x.16xlarge"), "gn8v-tee");
  EXPECT_NE(InstanceFamily("ecs.gn8v-tee-8x.16xlarge"), "gn8v");
}

TEST(InstanceFamilyTest, NotAnEcsTypeGivesNothing) {
  for (const char* type : {"", "ecs.", "ecs..2xlarge", "ecs.-c8g1.2xlarge", "ecs.8x.large",
                           "n1-standard-4", "m5.xlarge", "gn7i-c8g1.2xlarge"}) {
    EXPECT_FALSE(InstanceFamily(type).has_value()) << type;
  }
}

}  // namespace
}  // namespace cgpu
