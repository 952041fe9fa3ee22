// Kubeconfig and in-cluster configuration: every supported form, and every refusal naming the file.
#include "adapters/kube_config.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>

#include <cstdio>
#include <map>

#include "support/fake_api_server.h"
#include "support/test_certificates.h"

namespace cgpu {
namespace {

std::string Base64(const std::string& data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  const int length = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                     reinterpret_cast<const unsigned char*>(data.data()),
                                     static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(length));
  return out;
}

class KubeconfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    ca_ = testing::MakeTestCa();
    client_ = testing::MakeClientPair(ca_, "cgpu-guard");
  }

  // A kubeconfig with one context "main" whose cluster and user bodies are given (YAML, already
  // indented by 4).
  std::string Write(const std::string& cluster, const std::string& user,
                    const std::string& extra = "") {
    const std::string path = dir_ + "/config";
    testing::WriteFile(path,
                       "apiVersion: v1\n"
                       "kind: Config\n"
                       "current-context: main\n"
                       "clusters:\n"
                       "- name: c1\n"
                       "  cluster:\n" +
                           cluster +
                           "contexts:\n"
                           "- name: main\n"
                           "  context:\n"
                           "    cluster: c1\n"
                           "    user: u1\n"
                           "    namespace: default\n"
                           "- name: other\n"
                           "  context:\n"
                           "    cluster: c1\n"
                           "    user: u1\n"
                           "users:\n"
                           "- name: u1\n"
                           "  user:\n" +
                           user + extra);
    return path;
  }

  std::string CaData() const {
    return "    server: https://api.example.com:6443\n"
           "    certificate-authority-data: " +
           Base64(ca_.cert_pem) + "\n";
  }

  std::string dir_;
  testing::TestCa ca_;
  testing::ServingPair client_;
};

TEST_F(KubeconfigTest, TokenAndCertificateAuthorityData) {
  const std::string path = Write(CaData(), "    token: abc.def\n");
  StatusOr<KubeConfig> config = LoadKubeconfig(path);
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->host, "api.example.com");
  EXPECT_EQ(config->port, 6443);
  EXPECT_EQ(config->ca_pem, ca_.cert_pem);
  EXPECT_EQ(config->token, "abc.def");
  EXPECT_TRUE(config->token_file.empty());
  EXPECT_FALSE(config->insecure_skip_tls_verify);
  EXPECT_EQ(config->source, "kubeconfig " + path + " (context main)");
}

TEST_F(KubeconfigTest, TokenFileAndCertificateAuthorityFileRelativeToTheKubeconfig) {
  testing::WriteFile(dir_ + "/ca.crt", ca_.cert_pem);
  testing::WriteFile(dir_ + "/token", "  rotated-token\n");
  const std::string path = Write(
      "    server: https://10.0.0.1\n"
      "    certificate-authority: ca.crt\n",
      "    tokenFile: token\n");
  StatusOr<KubeConfig> config = LoadKubeconfig(path);
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->host, "10.0.0.1");
  EXPECT_EQ(config->port, 443);
  EXPECT_EQ(config->ca_pem, ca_.cert_pem);
  EXPECT_EQ(config->token_file, dir_ + "/token");
  EXPECT_EQ(config->token, "rotated-token");
}

TEST_F(KubeconfigTest, ClientCertificateAsDataAndAsFiles) {
  StatusOr<KubeConfig> from_data =
      LoadKubeconfig(Write(CaData(), "    client-certificate-data: " + Base64(client_.cert_pem) +
                                         "\n"
                                         "    client-key-data: " +
                                         Base64(client_.key_pem) + "\n"));
  ASSERT_TRUE(from_data.ok()) << from_data.status().message();
  EXPECT_EQ(from_data->client_cert_pem, client_.cert_pem);
  EXPECT_EQ(from_data->client_key_pem, client_.key_pem);

  testing::WriteFile(dir_ + "/client.crt", client_.cert_pem);
  testing::WriteFile(dir_ + "/client.key", client_.key_pem);
  StatusOr<KubeConfig> from_files = LoadKubeconfig(Write(CaData(),
                                                         "    client-certificate: client.crt\n"
                                                         "    client-key: " +
                                                             dir_ + "/client.key\n"));
  ASSERT_TRUE(from_files.ok()) << from_files.status().message();
  EXPECT_EQ(from_files->client_cert_pem, client_.cert_pem);
  EXPECT_EQ(from_files->client_key_pem, client_.key_pem);
}

TEST_F(KubeconfigTest, ClientKeyThatDoesNotMatchTheCertificateIsRefused) {
  const testing::ServingPair other = testing::MakeClientPair(ca_, "other");
  StatusOr<KubeConfig> config =
      LoadKubeconfig(Write(CaData(), "    client-certificate-data: " + Base64(client_.cert_pem) +
                                         "\n"
                                         "    client-key-data: " +
                                         Base64(other.key_pem) + "\n"));
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("does not match"), std::string::npos)
      << config.status().message();
}

TEST_F(KubeconfigTest, InsecureAndIpv6Server) {
  StatusOr<KubeConfig> config =
      LoadKubeconfig(Write("    server: https://[fd00::1]:6443\n"
                           "    insecure-skip-tls-verify: true\n",
                           "    token: t\n"));
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->host, "fd00::1");
  EXPECT_EQ(config->port, 6443);
  EXPECT_TRUE(config->insecure_skip_tls_verify);
  EXPECT_TRUE(config->ca_pem.empty());
}

TEST_F(KubeconfigTest, NamedContextIsUsedInsteadOfTheCurrentOne) {
  StatusOr<KubeConfig> config = LoadKubeconfig(Write(CaData(), "    token: t\n"), "other");
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_NE(config->source.find("(context other)"), std::string::npos);
}

TEST_F(KubeconfigTest, ErrorsNameTheFileAndWhatIsWrong) {
  struct Case {
    std::string cluster;
    std::string user;
    std::string context;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"    server: https://a:6443\n    certificate-authority-data: '!!!notbase64'\n",
       "    token: t\n", "", "certificate-authority-data is not valid base64"},
      {CaData(), "    token: t\n", "missing",
       "context \"missing\" not found (contexts: main, other)"},
      {CaData(),
       "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: aws\n", "",
       "exec plugin (command: aws)"},
      {CaData(), "    auth-provider:\n      name: gcp\n", "", "auth-provider (gcp)"},
      {CaData(), "    username: admin\n    password: secret\n", "", "basic authentication"},
      {"    server: http://a:8080\n", "    token: t\n", "", "plain HTTP"},
      {"    server: https://a:99999\n", "    token: t\n", "", "port 99999 is not in 1..65535"},
      {"    server: https://a/prefix\n", "    token: t\n", "", "path prefix"},
      {"    server: https://a\n    certificate-authority: missing-ca.crt\n", "    token: t\n", "",
       dir_ + "/missing-ca.crt"},
      {"    server: https://a\n    certificate-authority-data: " + Base64("not a pem") + "\n",
       "    token: t\n", "", "holds no PEM certificate"},
      {"    server: https://a\n    insecure-skip-tls-verify: true\n"
       "    certificate-authority-data: " +
           Base64(ca_.cert_pem) + "\n",
       "    token: t\n", "", "both insecure-skip-tls-verify and a certificate authority"},
      {CaData(), "    client-certificate-data: " + Base64(client_.cert_pem) + "\n", "",
       "needs both certificate and key"},
  };
  for (const Case& c : cases) {
    const std::string path = Write(c.cluster, c.user);
    StatusOr<KubeConfig> config = LoadKubeconfig(path, c.context);
    ASSERT_FALSE(config.ok()) << c.expected;
    EXPECT_NE(config.status().message().find(path), std::string::npos) << config.status().message();
    EXPECT_NE(config.status().message().find(c.expected), std::string::npos)
        << "expected \"" << c.expected << "\" in: " << config.status().message();
  }
}

TEST_F(KubeconfigTest, MissingFileAndBrokenYaml) {
  StatusOr<KubeConfig> missing = LoadKubeconfig(dir_ + "/nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find(dir_ + "/nope"), std::string::npos);

  testing::WriteFile(dir_ + "/broken", "clusters: [\n");
  StatusOr<KubeConfig> broken = LoadKubeconfig(dir_ + "/broken");
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.status().message().find(dir_ + "/broken"), std::string::npos);
  EXPECT_NE(broken.status().message().find("not valid YAML"), std::string::npos)
      << broken.status().message();
}

TEST(DecodeBase64Test, AcceptsLineBreaksAndRejectsGarbage) {
  StatusOr<std::string> decoded = DecodeBase64("aGVsbG8s\nIHdvcmxk\n", "x");
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, "hello, world");
  EXPECT_EQ(*DecodeBase64("YQ==", "x"), "a");
  EXPECT_FALSE(DecodeBase64("YQ=*", "field").ok());
  EXPECT_EQ(DecodeBase64("@@@@", "field").status().message(), "field is not valid base64");
}

class InClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::MakeTempDir();
    ca_ = testing::MakeTestCa();
    testing::WriteFile(dir_ + "/token", "sa-token\n");
    testing::WriteFile(dir_ + "/ca.crt", ca_.cert_pem);
  }

  std::function<const char*(const char*)> Env() {
    return [this](const char* name) -> const char* {
      const auto found = env_.find(name);
      return found == env_.end() ? nullptr : found->second.c_str();
    };
  }

  std::string dir_;
  testing::TestCa ca_;
  std::map<std::string, std::string> env_ = {{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                                             {"KUBERNETES_SERVICE_PORT", "443"}};
};

TEST_F(InClusterTest, ReadsEnvironmentTokenAndCa) {
  StatusOr<KubeConfig> config = InClusterConfig(Env(), dir_);
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->host, "10.96.0.1");
  EXPECT_EQ(config->port, 443);
  EXPECT_EQ(config->token, "sa-token");
  EXPECT_EQ(config->token_file, dir_ + "/token");
  EXPECT_EQ(config->ca_pem, ca_.cert_pem);
  EXPECT_EQ(config->source, "in-cluster");
}

TEST_F(InClusterTest, Ipv6ServiceHost) {
  env_["KUBERNETES_SERVICE_HOST"] = "fd00:10:96::1";
  env_["KUBERNETES_SERVICE_PORT"] = "6443";
  StatusOr<KubeConfig> config = InClusterConfig(Env(), dir_);
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->host, "fd00:10:96::1");
  EXPECT_EQ(config->port, 6443);
  env_["KUBERNETES_SERVICE_HOST"] = "[fd00:10:96::1]";
  EXPECT_EQ(InClusterConfig(Env(), dir_)->host, "fd00:10:96::1");
}

TEST_F(InClusterTest, RefusalsSayWhatIsMissing) {
  env_.erase("KUBERNETES_SERVICE_PORT");
  StatusOr<KubeConfig> no_env = InClusterConfig(Env(), dir_);
  ASSERT_FALSE(no_env.ok());
  EXPECT_NE(no_env.status().message().find("KUBERNETES_SERVICE_PORT"), std::string::npos);

  env_["KUBERNETES_SERVICE_PORT"] = "https";
  EXPECT_NE(InClusterConfig(Env(), dir_).status().message().find("port \"https\""),
            std::string::npos);

  env_["KUBERNETES_SERVICE_PORT"] = "443";
  std::remove((dir_ + "/token").c_str());
  StatusOr<KubeConfig> no_token = InClusterConfig(Env(), dir_);
  ASSERT_FALSE(no_token.ok());
  EXPECT_NE(no_token.status().message().find(dir_ + "/token"), std::string::npos);

  testing::WriteFile(dir_ + "/token", "t");
  std::remove((dir_ + "/ca.crt").c_str());
  StatusOr<KubeConfig> no_ca = InClusterConfig(Env(), dir_);
  ASSERT_FALSE(no_ca.ok());
  EXPECT_NE(no_ca.status().message().find(dir_ + "/ca.crt"), std::string::npos);
}

}  // namespace
}  // namespace cgpu
