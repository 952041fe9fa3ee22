#include "shell/tls_certificates.h"

#include <gtest/gtest.h>

#include "support/test_certificates.h"

namespace cgpu {
namespace {

using testing::MakeServingPair;
using testing::MakeTestCa;
using testing::WriteFile;

TEST(CertificateBundleTest, ParsesPairAndExpiry) {
  auto ca = MakeTestCa();
  auto pair = MakeServingPair(ca, "webhook", 10);
  auto bundle = CertificateBundle::FromPem(pair.cert_pem + ca.cert_pem, pair.key_pem);
  ASSERT_TRUE(bundle.ok()) << bundle.status().message();
  EXPECT_EQ((*bundle)->subject(), "/CN=webhook");
  const std::time_t in_ten_days = std::time(nullptr) + 10 * 86400;
  EXPECT_NEAR(static_cast<double>((*bundle)->not_after()), static_cast<double>(in_ten_days), 120);
  EXPECT_EQ(sk_X509_num((*bundle)->chain()), 1);  // the CA after the leaf
}

TEST(CertificateBundleTest, RejectsGarbageAndMismatchedKey) {
  auto ca = MakeTestCa();
  auto one = MakeServingPair(ca, "one");
  auto two = MakeServingPair(ca, "two");
  EXPECT_EQ(CertificateBundle::FromPem("not pem", one.key_pem)
                .status()
                .message()
                .rfind("no PEM certificate found", 0),
            0u);
  EXPECT_EQ(CertificateBundle::FromPem(one.cert_pem, "")
                .status()
                .message()
                .rfind("no PEM private key found", 0),
            0u);
  EXPECT_EQ(CertificateBundle::FromPem(one.cert_pem, two.key_pem).status().message(),
            "the private key does not match the certificate");
}

class CertificateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    cert_ = dir_ + "/tls.crt";
    key_ = dir_ + "/tls.key";
  }
  void Write(const testing::ServingPair& pair) {
    WriteFile(cert_, pair.cert_pem);
    WriteFile(key_, pair.key_pem);
  }
  std::string dir_, cert_, key_;
  testing::TestCa ca_ = MakeTestCa();
};

TEST_F(CertificateStoreTest, MissingFileIsAStartupError) {
  auto store = CertificateStore::Load(cert_, key_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().message(), "cannot read " + cert_);
}

TEST_F(CertificateStoreTest, ReloadSwapsOnlyOnValidChange) {
  Write(MakeServingPair(ca_, "first"));
  auto store = CertificateStore::Load(cert_, key_);
  ASSERT_TRUE(store.ok()) << store.status().message();
  auto first = (*store)->Current();
  EXPECT_FALSE(*(*store)->ReloadIfChanged());  // unchanged files

  // Half a rotation: new certificate, old key. Refused; the old pair keeps serving.
  auto second = MakeServingPair(ca_, "second");
  WriteFile(cert_, second.cert_pem);
  auto mismatched = (*store)->ReloadIfChanged();
  ASSERT_FALSE(mismatched.ok());
  EXPECT_NE(mismatched.status().message().find("does not match"), std::string::npos);
  EXPECT_EQ((*store)->Current(), first);
  EXPECT_FALSE(*(*store)->ReloadIfChanged());  // the same bad pair is not reported again

  WriteFile(key_, second.key_pem);
  EXPECT_TRUE(*(*store)->ReloadIfChanged());
  EXPECT_NE((*store)->Current()->subject().find("second"), std::string::npos);
  // A connection holding the old bundle keeps it alive.
  EXPECT_NE(first->subject().find("first"), std::string::npos);
}

}  // namespace
}  // namespace cgpu
