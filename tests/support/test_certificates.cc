#include "support/test_certificates.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace cgpu::testing {
namespace {

EVP_PKEY* NewKey() { return EVP_EC_gen("P-256"); }

std::string ToPem(X509* cert) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(bio, cert);
  char* data = nullptr;
  long length = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(length));
  BIO_free(bio);
  return pem;
}

std::string ToPem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long length = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(length));
  BIO_free(bio);
  return pem;
}

void AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value);
  if (extension == nullptr) throw std::runtime_error("bad extension");
  X509_add_ext(cert, extension, -1);
  X509_EXTENSION_free(extension);
}

X509* NewCert(EVP_PKEY* key, const std::string& common_name, int days) {
  static long serial = 1;
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), serial++);
  X509_gmtime_adj(X509_getm_notBefore(cert), days < 0 ? 2L * days * 86400 : -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 86400L * days);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  return cert;
}

}  // namespace

X509* ParseCert(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return cert;
}

EVP_PKEY* ParseKey(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return key;
}

TestCa MakeTestCa(const std::string& common_name) {
  EVP_PKEY* key = NewKey();
  X509* cert = NewCert(key, common_name, 365);
  X509_set_issuer_name(cert, X509_get_subject_name(cert));
  AddExtension(cert, cert, NID_basic_constraints, "critical,CA:TRUE");
  AddExtension(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign");
  X509_sign(cert, key, EVP_sha256());
  TestCa ca{ToPem(cert), ToPem(key)};
  X509_free(cert);
  EVP_PKEY_free(key);
  return ca;
}

namespace {

// A leaf certificate for `common_name` signed by `ca`, with the given extended key usage and,
// when not null, subject alternative names.
ServingPair IssuePair(const TestCa& ca, const std::string& common_name, int days,
                      const char* subject_alt_names, const char* key_usage) {
  X509* ca_cert = ParseCert(ca.cert_pem);
  EVP_PKEY* ca_key = ParseKey(ca.key_pem);
  EVP_PKEY* key = NewKey();
  X509* cert = NewCert(key, common_name, days);
  X509_set_issuer_name(cert, X509_get_subject_name(ca_cert));
  if (subject_alt_names != nullptr) {
    AddExtension(cert, ca_cert, NID_subject_alt_name, subject_alt_names);
  }
  AddExtension(cert, ca_cert, NID_ext_key_usage, key_usage);
  X509_sign(cert, ca_key, EVP_sha256());
  ServingPair pair{ToPem(cert), ToPem(key)};
  X509_free(cert);
  EVP_PKEY_free(key);
  X509_free(ca_cert);
  EVP_PKEY_free(ca_key);
  return pair;
}

}  // namespace

ServingPair MakeServingPair(const TestCa& ca, const std::string& common_name, int days) {
  return IssuePair(ca, common_name, days, "DNS:localhost,IP:127.0.0.1", "serverAuth");
}

ServingPair MakeClientPair(const TestCa& ca, const std::string& common_name) {
  return IssuePair(ca, common_name, 30, nullptr, "clientAuth");
}

HandshakeResult Handshake(int port, int min_version, int max_version, const std::string& ciphers) {
  HandshakeResult result;
  SSL_CTX* context = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_security_level(context, 0);
  SSL_CTX_set_min_proto_version(context, min_version);
  SSL_CTX_set_max_proto_version(context, max_version);
  if (!ciphers.empty()) SSL_CTX_set_cipher_list(context, ciphers.c_str());

  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    result.error = "connect failed";
  } else {
    SSL* ssl = SSL_new(context);
    SSL_set_fd(ssl, fd);
    ERR_clear_error();
    if (SSL_connect(ssl) == 1) {
      result.ok = true;
      result.protocol = SSL_get_version(ssl);
      if (X509* peer = SSL_get1_peer_certificate(ssl)) {
        char name[256] = {};
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, name, sizeof(name));
        result.peer_common_name = name;
        X509_free(peer);
      }
      SSL_shutdown(ssl);
    } else {
      unsigned long code = ERR_get_error();
      const char* reason = ERR_reason_error_string(code);
      result.error = reason != nullptr ? reason : "handshake failed";
    }
    SSL_free(ssl);
  }
  close(fd);
  SSL_CTX_free(context);
  ERR_clear_error();
  return result;
}

namespace {

// The directories MakeTempDir made, removed when the test process exits (tests make one per
// case, thousands a run). Only by the process that made them: a forked child that exits must not.
class TempDirRegistry {
 public:
  ~TempDirRegistry() {
    if (getpid() != owner_) return;
    for (const std::string& dir : dirs_) {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    }
  }
  void Add(std::string dir) {
    std::lock_guard<std::mutex> lock(mu_);
    dirs_.push_back(std::move(dir));
  }

 private:
  const pid_t owner_ = getpid();
  std::mutex mu_;
  std::vector<std::string> dirs_;  // guarded by mu_
};

TempDirRegistry& TempDirs() {
  static TempDirRegistry registry;
  return registry;
}

}  // namespace

std::string MakeTempDir() {
  std::string pattern = "/tmp/cgpu-guard-test-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  TempDirs().Add(pattern);
  return pattern;
}

void WriteFile(const std::string& path, const std::string& content) {
  // Write beside, then rename: readers never see a half-written file (as with Secret updates).
  const std::string temporary = path + ".tmp";
  {
    std::ofstream out(temporary, std::ios::binary | std::ios::trunc);
    out << content;
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    throw std::runtime_error("rename failed for " + path);
  }
}

void WriteServingFiles(const std::string& dir, const TestCa& ca, const std::string& common_name) {
  WriteFile(dir + "/ca.crt", ca.cert_pem);
  const ServingPair pair = MakeServingPair(ca, common_name);
  WriteFile(dir + "/tls.crt", pair.cert_pem);
  WriteFile(dir + "/tls.key", pair.key_pem);
}

}  // namespace cgpu::testing
