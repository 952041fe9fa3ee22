#include "shell/host_port.h"

#include <gtest/gtest.h>

namespace cgpu {
namespace {

TEST(HostPortTest, Forms) {
  EXPECT_EQ(ParseHostPort("0.0.0.0:8443")->host, "0.0.0.0");
  EXPECT_EQ(ParseHostPort("0.0.0.0:8443")->port, 8443);
  EXPECT_EQ(ParseHostPort("[::1]:9090")->host, "::1");
  EXPECT_EQ(ParseHostPort(":8443")->host, "0.0.0.0");
  EXPECT_EQ(ParseHostPort("localhost:0")->port, 0);
  EXPECT_FALSE(ParseHostPort("8443").ok());
  EXPECT_FALSE(ParseHostPort("host:99999").ok());
  EXPECT_FALSE(ParseHostPort("::1:8443").ok());
  EXPECT_EQ(ParseHostPort("x").status().message(),
            "expected HOST:PORT (e.g. 0.0.0.0:8443 or [::1]:8443), got \"x\"");
}

TEST(HostPortTest, ThePortIsDigitsFrom0To65535) {
  EXPECT_EQ(ParseHostPort("h:65535")->port, 65535);
  for (const char* text : {"h:", "h:-1", "h:+80", "h:80x", "h: 80", "h:65536", "h:0x10"}) {
    EXPECT_FALSE(ParseHostPort(text).ok()) << text;
  }
}

TEST(HostPortTest, PrintsWhatItReadsBack) {
  EXPECT_EQ(ToString(HostPort{"0.0.0.0", 8443}), "0.0.0.0:8443");
  EXPECT_EQ(ToString(HostPort{"::1", 9090}), "[::1]:9090");
  for (const char* text : {"0.0.0.0:8443", "[::1]:9090", "localhost:0"}) {
    EXPECT_EQ(ToString(*ParseHostPort(text)), text);
  }
}

}  // namespace
}  // namespace cgpu
